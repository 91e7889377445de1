#!/usr/bin/env bash
# Attacks a release build of wscluster as a stranger would, and prints one row per attack:
# attack | result | bound | detail, then one JSON line per attack.
#
#   scripts/attack.sh                       # every attack
#   scripts/attack.sh --only memory,admin   # groups: mesh, logs, memory, frames, admin, identity
#
# Each attack starts its own node from target/release/wscluster with no security option, on
# loopback ephemeral ports (--listen 127.0.0.1:0, --cluster-port 0); nothing is sent to an
# address other than loopback. The memory attacks read the node's VmRSS from /proc, so run the
# script on an otherwise quiet machine. Exit status 0 only when every attack was refused or
# bounded. The attacks, and what counts as refused, are listed in docs/security.md ("Attacks we
# test"); tests/attack.rs runs the same tool in the test suite.
set -euo pipefail

cd "$(dirname "$0")/.."

cargo build --release --bin wscluster --bin wscluster-attack
exec target/release/wscluster-attack target/release/wscluster "$@"
