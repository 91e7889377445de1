# Shared by bench/run.sh and bench/run-cluster.sh: build, start and stop pinned nodes on loopback,
# run the load generator pinned to another core, keep every figure. Source it; do not run it.
#
# Environment:
#   NODE_CPU     CPU list the node(s) run on (taskset -c), default 0
#   LOADGEN_CPU  CPU list the load generator runs on, default 1
#   BENCH_OUT    where outputs go, default target/bench/<date>-<time>
#   BENCH_QUICK  1 = short windows (warmup 1 s, 3 s measured) for a smoke run
#   BENCH_NO_WAIT 1 = measure even while builds or tests run (figures then only for comparing
#                runs made back to back, never for the README)
#   PROFILE      1 = also sample NODE_CPU with `perf record -g` during each measured window and
#                print where its time went (the data stays in BENCH_OUT/<run>.perf.data)
#   NODE_BIN     the node binary to measure, default target/release/wscluster (built here);
#                when set, only the load generator is built

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NODE_CPU="${NODE_CPU:-0}"
LOADGEN_CPU="${LOADGEN_CPU:-1}"
BENCH_OUT="${BENCH_OUT:-target/bench/$(date +%Y%m%d-%H%M%S)}"
BUILD_NODE=1
[[ -n "${NODE_BIN:-}" ]] && BUILD_NODE=0
NODE_BIN="${NODE_BIN:-$ROOT/target/release/wscluster}"
LOADGEN_BIN="$ROOT/target/release/wscluster-loadgen"
if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
    WINDOW=(--warmup 1 --duration 3)
else
    WINDOW=(--warmup 2 --duration 10)
fi
mkdir -p "$BENCH_OUT"
RESULTS="$BENCH_OUT/results.jsonl"
COMMANDS="$BENCH_OUT/commands.txt"
: >"$RESULTS"
: >"$COMMANDS"

# PIDs and URLs of the nodes started by start_node, in order.
NODE_PIDS=()
NODE_URLS=()

# Stops every node we started (by PID), on any exit.
stop_nodes() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${NODE_PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    NODE_PIDS=()
    NODE_URLS=()
}
trap stop_nodes EXIT

# Prints and records a command line, quoted so it can be pasted back into a shell.
show() {
    local line
    line="$(printf '%q ' "$@")"
    printf '$ %s\n' "${line% }" | tee -a "$COMMANDS"
}

# Builds the load generator and (unless NODE_BIN was given) the node, in release mode.
build() {
    local bins=(--bin wscluster-loadgen)
    [[ $BUILD_NODE == 1 ]] && bins+=(--bin wscluster)
    show cargo build --release "${bins[@]}"
    cargo build --release "${bins[@]}"
    echo "node binary: $NODE_BIN"
}

# Describes the machine: core counts first (the figures mean little without them).
header() {
    echo "== machine"
    echo "nproc: $(nproc) (online: $(nproc --all))"
    lscpu 2>/dev/null | grep -E '^(Model name|Thread\(s\) per core|CPU MHz)' || true
    echo "kernel: $(uname -r)"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)')"
    echo "node(s) pinned to CPU $NODE_CPU, load generator to CPU $LOADGEN_CPU"
    echo "open files: soft $(ulimit -n), hard $(ulimit -Hn)"
    echo "outputs: $BENCH_OUT"
    echo
}

# start_node NAME [extra node flags...]: starts a node on 127.0.0.1 (free port), pinned to
# NODE_CPU; waits for the address it prints on stdout; appends to NODE_PIDS / NODE_URLS.
start_node() {
    local name="$1"
    shift
    local out="$BENCH_OUT/$name.node.out" err="$BENCH_OUT/$name.node.err"
    show taskset -c "$NODE_CPU" "$NODE_BIN" --listen 127.0.0.1:0 "$@"
    taskset -c "$NODE_CPU" "$NODE_BIN" --listen 127.0.0.1:0 "$@" >"$out" 2>"$err" &
    local pid=$!
    NODE_PIDS+=("$pid")
    local addr=""
    for _ in $(seq 150); do
        addr="$(grep -oE '127\.0\.0\.1:[0-9]+' "$out" | head -n1 || true)"
        [[ -n "$addr" ]] && break
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "node $name exited at start:" >&2
            cat "$err" >&2
            return 1
        fi
        sleep 0.1
    done
    if [[ -z "$addr" ]]; then
        echo "node $name printed no address within 15 s" >&2
        cat "$err" >&2
        return 1
    fi
    NODE_URLS+=("ws://$addr")
    echo "node $name: pid $pid, ws://$addr"
}

# loadgen NAME ARGS...: runs the load generator pinned to LOADGEN_CPU against every started node,
# measuring every node's PID; keeps the table and appends the JSON line to results.jsonl.
loadgen() {
    local name="$1"
    shift
    local targets=() pid url
    for url in "${NODE_URLS[@]}"; do targets+=(--url "$url"); done
    for pid in "${NODE_PIDS[@]}"; do targets+=(--node-pid "$pid"); done
    local cmd=(taskset -c "$LOADGEN_CPU" "$LOADGEN_BIN" --label "$name" --json "${targets[@]}" "$@")
    show "${cmd[@]}"
    local status=0 profiler=""
    if [[ "${PROFILE:-0}" == 1 ]]; then
        profile_window "$name" &
        profiler=$!
    fi
    "${cmd[@]}" >"$BENCH_OUT/$name.txt" 2>"$BENCH_OUT/$name.log" || status=$?
    if [[ -n $profiler ]]; then
        wait "$profiler" || true
        profile_report "$BENCH_OUT/$name.perf.data"
    fi
    grep -v '^{' "$BENCH_OUT/$name.txt" || true
    grep '^{' "$BENCH_OUT/$name.txt" >>"$RESULTS" || true
    if [[ $status -ne 0 ]]; then
        echo "!! $name failed (exit $status):"
        tail -n 5 "$BENCH_OUT/$name.log"
    fi
    echo
    return 0
}

# profile_window NAME: with PROFILE=1, samples every process on NODE_CPU (call graphs) for the
# middle of the measured window: from 2 s after the warmup ends until 1 s before the window does
# (at least 1 s).
profile_window() {
    local warmup=2 duration=10 i
    for ((i = 0; i < ${#WINDOW[@]}; i++)); do
        [[ ${WINDOW[i]} == --warmup ]] && warmup=${WINDOW[i + 1]}
        [[ ${WINDOW[i]} == --duration ]] && duration=${WINDOW[i + 1]}
    done
    local span=$((duration - 3))
    ((span >= 1)) || span=1
    sleep $((warmup + 2))
    perf record -q -C "$NODE_CPU" -g -o "$BENCH_OUT/$1.perf.data" -- sleep "$span" \
        >/dev/null 2>&1 || echo "!! perf record failed (is perf installed and allowed?)"
}

# profile_report FILE: where the time on NODE_CPU went, as shares of all samples: the node and
# broker processes' kernel and user time, and the kernel calls that carry a delivery.
profile_report() {
    [[ -f $1 ]] || return 0
    echo "-- profile of CPU $NODE_CPU ($1)"
    perf report -i "$1" --no-children --sort comm,dso -g none 2>/dev/null | grep '%' | head -n 8 || true
    echo "   calls, their kernel work included:"
    perf report -i "$1" --children --sort sym -g none 2>/dev/null |
        grep -E '\] (__GI___writev|__libc_recv|__send|epoll_wait|__schedule|net_rx_action|tcp_sendmsg)$' |
        awk '{print "  ", $1, $NF}' || true
}

# Prints one line per run with its key figures.
summary() {
    echo "== summary ($(nproc) CPUs usable, $(nproc --all) online; commands in $COMMANDS)"
    "$LOADGEN_BIN" summary "$RESULTS"
}

# True if scenario NAME was asked for (no arguments = all; an argument matches as a prefix).
wanted() {
    local name="$1" want
    shift
    [[ $# -eq 0 ]] && return 0
    for want in "$@"; do
        [[ "$name" == "$want"* ]] && return 0
    done
    return 1
}

# Waits while another heavy process (build, test, node, load generator) runs on this machine.
wait_quiet() {
    local busy waited=0
    [[ "${BENCH_NO_WAIT:-0}" == 1 ]] && { echo "(BENCH_NO_WAIT=1: not waiting for a quiet machine)"; return 0; }
    while busy="$(ps -eo pid=,comm= | awk '$2 ~ /^(cargo|rustc|clippy-driver|cc1.*|ld|rust-lld|wscluster.*)$/')"; [[ -n "$busy" ]]; do
        if ((waited >= 600)); then
            echo "!! still busy after 600 s, measuring anyway:"; echo "$busy"
            return 0
        fi
        echo "waiting for other heavy processes (${waited}s):" $busy
        sleep 10
        waited=$((waited + 10))
    done
    ((waited == 0)) || echo "(waited ${waited}s for the machine to be quiet)"
}

# A three-master Redis Cluster on free loopback ports, every redis-server pinned to NODE_CPU with
# the nodes (its CPU time is server time), in $BENCH_OUT/redis-cluster/m1..m3: each master gets a
# third of the slots (CLUSTER ADDSLOTSRANGE), the first meets the others (CLUSTER MEET), and the
# function returns once every master sees all three slot ranges. Sets RC_SEEDS (HOST:PORT each)
# and RC_PIDS; the caller stops them (add them to NODE_PIDS to measure them with the nodes).
RC_SEEDS=()
RC_PIDS=()
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_redis_cluster() {
    local i port bus dir ranges=("0 5460" "5461 10922" "10923 16383")
    RC_SEEDS=()
    RC_PIDS=()
    for i in 1 2 3; do
        port="$(free_port)"
        bus="$(free_port)"
        dir="$BENCH_OUT/redis-cluster/m$i"
        mkdir -p "$dir"
        rm -f "$dir/nodes.conf"
        show taskset -c "$NODE_CPU" redis-server --port "$port" --cluster-port "$bus" --cluster-enabled yes
        (cd "$dir" && exec taskset -c "$NODE_CPU" redis-server --port "$port" --cluster-port "$bus" \
            --bind 127.0.0.1 --cluster-enabled yes --cluster-config-file nodes.conf --save "" \
            --appendonly no --loglevel warning --logfile redis.log) &
        RC_PIDS+=($!)
        RC_SEEDS+=("127.0.0.1:$port")
        for _ in $(seq 100); do
            redis-cli -p "$port" ping >/dev/null 2>&1 && break
            sleep 0.05
        done
        redis-cli -p "$port" cluster addslotsrange ${ranges[$((i - 1))]} >/dev/null
        [[ $i == 1 ]] || redis-cli -p "${RC_SEEDS[0]##*:}" cluster meet 127.0.0.1 "$port" "$bus" >/dev/null
    done
    for i in 0 1 2; do
        for _ in $(seq 200); do
            [[ "$(redis-cli -p "${RC_SEEDS[$i]##*:}" cluster slots 2>/dev/null | grep -c '^127.0.0.1$')" -ge 3 ]] && break
            sleep 0.05
        done
    done
    echo "redis cluster: pids ${RC_PIDS[*]}, seeds ${RC_SEEDS[*]}"
}
