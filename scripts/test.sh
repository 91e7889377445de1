#!/usr/bin/env bash
# Runs the whole test suite, after installing whatever the tests need that is missing.
#
#   scripts/test.sh            # from anywhere; works on a fresh Debian machine with Rust
#
# What the tests need besides Rust:
#   kosoku 0.1.0 (PyPI)  the Autobahn conformance runner used by tests/autobahn.rs; installed into a
#                        project-local venv (target/tools/venv) and exported as KOSOKU.
#   redis-server         Debian's package, for the Redis engine's tests (tests/redis_engine.rs and the
#                        redis_* tests of tests/cluster_process_*.rs; tests/redis_tls.rs needs its
#                        TLS support, which Debian's build has: --tls-port); each test starts its
#                        own server on an ephemeral port. REDIS_SERVER may name another binary.
#                        The Redis Cluster engine's tests (tests/redis_cluster_engine.rs and the
#                        redis_cluster_* tests of tests/cluster_process_*.rs) start three of them
#                        with --cluster-enabled yes and need Redis 7 or later (sharded Pub/Sub).
#   nats-server          Debian's package, for the NATS engine's tests (tests/nats_engine.rs and the
#                        nats_* tests of tests/cluster_process_*.rs); each test starts its own server
#                        on ephemeral loopback ports. NATS_SERVER may name another binary.
#   chromium (Debian)    the headless browser of tests/ops_status_page.rs (the status page test);
#                        installed with apt when missing and exported as CHROMIUM.
# To add a tool: write an ensure_<tool> function next to ensure_kosoku (apt packages go through
# apt_install, e.g. `command -v redis-server >/dev/null || apt_install redis-server`) and call it in
# main.
#
# Installs need root for apt-get (CI runs as root; elsewhere sudo is used when present). Tool output
# goes to standard error; the last lines printed are cargo test's own summaries.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/target/tools"
KOSOKU_VERSION=0.1.0

say() { echo "test.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (run as root or install sudo)"
    fi
}

# Installs Debian packages, refreshing the package lists once first (a fresh machine has none).
APT_UPDATED=no
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
    if [ "$APT_UPDATED" = no ]; then
        say "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        APT_UPDATED=yes
    fi
    say "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >&2
}

ensure_python3() {
    command -v python3 >/dev/null 2>&1 || apt_install python3
}

# A kosoku that answers --help, else nothing: `kosoku_works PATH`.
kosoku_works() {
    [ -x "$1" ] && "$1" --help >/dev/null 2>&1
}

# Creates the venv, installing Debian's python3-venv when `python3 -m venv` lacks ensurepip.
make_venv() {
    local venv=$1
    rm -rf "$venv"
    if python3 -m venv "$venv" >&2 2>/dev/null; then
        return 0
    fi
    rm -rf "$venv"
    say "python3 -m venv failed; installing python3-venv"
    local minor
    minor=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt_install python3-venv || apt_install "python${minor}-venv" || return 1
    python3 -m venv "$venv" >&2
}

# kosoku in target/tools/venv; when no venv can be made, `pip install --target` plus a wrapper.
ensure_kosoku() {
    local venv="$TOOLS/venv" wrapper="$TOOLS/bin/kosoku"
    if kosoku_works "$venv/bin/kosoku" \
        && "$venv/bin/python" -m pip show kosoku 2>/dev/null | grep -qx "Version: $KOSOKU_VERSION"; then
        KOSOKU="$venv/bin/kosoku"
    elif kosoku_works "$wrapper"; then
        KOSOKU="$wrapper"
    else
        ensure_python3
        mkdir -p "$TOOLS"
        if make_venv "$venv"; then
            say "installing kosoku $KOSOKU_VERSION into $venv"
            "$venv/bin/python" -m pip install -q --disable-pip-version-check \
                "kosoku==$KOSOKU_VERSION" >&2
            KOSOKU="$venv/bin/kosoku"
        else
            say "no venv possible; installing kosoku $KOSOKU_VERSION with pip --target"
            python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
            rm -rf "$TOOLS/kosoku-lib"
            python3 -m pip install -q --disable-pip-version-check --target "$TOOLS/kosoku-lib" \
                "kosoku==$KOSOKU_VERSION" >&2
            mkdir -p "$TOOLS/bin"
            cat >"$wrapper" <<WRAP
#!/bin/sh
PYTHONPATH="$TOOLS/kosoku-lib\${PYTHONPATH:+:\$PYTHONPATH}" exec python3 -c 'import sys; from kosoku._cli import main; sys.argv[0] = "kosoku"; sys.exit(main())' "\$@"
WRAP
            chmod +x "$wrapper"
            KOSOKU="$wrapper"
        fi
        kosoku_works "$KOSOKU" || die "kosoku was installed but does not run: $KOSOKU"
    fi
    export KOSOKU
    say "kosoku: $KOSOKU"
}

# redis-server from Debian when missing (the tests start it themselves; the package's own service,
# if the install starts one, is not used).
ensure_redis() {
    if [ -n "${REDIS_SERVER:-}" ]; then
        "$REDIS_SERVER" --version >/dev/null 2>&1 || die "REDIS_SERVER=$REDIS_SERVER does not run"
    elif ! command -v redis-server >/dev/null 2>&1; then
        apt_install redis-server
        command -v redis-server >/dev/null 2>&1 || die "redis-server was installed but is not on PATH"
    fi
    local version major
    version="$(${REDIS_SERVER:-redis-server} --version)"
    say "redis-server: $version"
    # Sharded Pub/Sub (SSUBSCRIBE/SPUBLISH), which the redis-cluster engine uses, came in Redis 7.
    major="$(printf '%s\n' "$version" | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')"
    [ "${major:-0}" -ge 7 ] || die "redis-server 7 or later is needed (sharded Pub/Sub): $version"
}

# nats-server from Debian when missing (the tests start it themselves on ephemeral loopback ports;
# the package's own service, if the install starts one, is not used).
ensure_nats_server() {
    if [ -n "${NATS_SERVER:-}" ]; then
        "$NATS_SERVER" --version >/dev/null 2>&1 || die "NATS_SERVER=$NATS_SERVER does not run"
    elif ! command -v nats-server >/dev/null 2>&1; then
        apt_install nats-server
        command -v nats-server >/dev/null 2>&1 || die "nats-server was installed but is not on PATH"
    fi
    say "nats-server: $(${NATS_SERVER:-nats-server} --version)"
}

# Debian's chromium for the status page test; CHROMIUM, when set, names another browser.
ensure_chromium() {
    if [ -n "${CHROMIUM:-}" ] && [ -x "$CHROMIUM" ]; then
        :
    elif command -v chromium >/dev/null 2>&1; then
        CHROMIUM=$(command -v chromium)
    else
        apt_install chromium
        CHROMIUM=$(command -v chromium) || die "chromium was installed but is not on PATH"
    fi
    export CHROMIUM
    say "chromium: $CHROMIUM"
}

main() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs)"
    cd "$ROOT"
    ensure_kosoku
    ensure_redis
    ensure_nats_server
    ensure_chromium
    # Doc examples first, so the last lines are the summaries of the unit and integration tests.
    cargo test --doc
    cargo test --all-targets --no-fail-fast
}

main "$@"
