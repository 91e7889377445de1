#!/usr/bin/env bash
# Makes docs/status-page.png: the status page of a live three-node cluster (in-process nodes with
# sgc subscribers and Presence members), rendered by headless chromium.
#
#   scripts/screenshot-status.sh [OUTPUT.png]     # default: docs/status-page.png
#
# It runs the browser test (tests/ops_status_page.rs) with WSCLUSTER_SCREENSHOT set: the test builds
# the cluster, loads /status in chromium over the DevTools protocol, waits until the page shows the
# populated cluster and saves a screenshot. Installs Debian's chromium when it is missing (root or
# sudo needed), like scripts/test.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/docs/status-page.png}
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac

if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends chromium >&2
fi

cd "$ROOT"
WSCLUSTER_SCREENSHOT="$OUT" cargo test --test ops_status_page -- --nocapture
echo "screenshot: $OUT"
