#!/usr/bin/env bash
# SIGKILL / SIGTERM → purge time on a 3-node cluster (wscluster-killbench, see bench/README.md,
# "Cluster benchmarks"): the nodes pinned to NODE_CPU (default 0), the benchmark's clients to
# LOADGEN_CPU (default 1). ROUNDS (default 30) kills per signal, MEMBERS (default 50) Presence
# members per node. ENGINE=redis (or nats): through a redis-server (or nats-server) of its own
# instead of the mesh; ENGINE=redis-cluster: through a three-master Redis Cluster of its own
# (pinned likewise). Extra
# arguments go to wscluster-killbench (e.g. --signal KILL).
#
# Before the run it waits (10 s polls, up to 10 minutes) while cargo, rustc or another wscluster
# is running, and says so. Output: $BENCH_OUT/killbench.txt (figures), killbench.log (rounds),
# killbench/kb-N.log (node logs), commands.txt.

source "$(dirname "$0")/lib.sh"

ROUNDS="${ROUNDS:-30}"
MEMBERS="${MEMBERS:-50}"
ENGINE="${ENGINE:-mesh}"
REDIS_PID=""
trap 'stop_nodes; [[ -n $REDIS_PID ]] && kill "$REDIS_PID" 2>/dev/null; for p in "${RC_PIDS[@]}"; do kill "$p" 2>/dev/null; done; true' EXIT

ulimit -n "$(ulimit -Hn)"
header
show cargo build --release --bin wscluster --bin wscluster-killbench
cargo build --release --bin wscluster --bin wscluster-killbench
echo
wait_quiet
ENGINE_ARGS=()
if [[ $ENGINE == redis ]]; then
    # ENGINE=redis: the nodes meet through a redis-server of their own (pinned with them).
    REDIS_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    show taskset -c "$NODE_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no
    taskset -c "$NODE_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" \
        --appendonly no --loglevel warning >"$BENCH_OUT/redis.out" 2>&1 &
    REDIS_PID=$!
    sleep 0.5
    ENGINE_ARGS=(--node-set cluster.engine=redis --node-set "cluster.redis.port=$REDIS_PORT"
        --node-set cluster.redis.channel=killbench)
elif [[ $ENGINE == nats ]]; then
    # ENGINE=nats: the nodes meet through a nats-server of their own (pinned with them).
    NATS_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    show taskset -c "$NODE_CPU" nats-server -a 127.0.0.1 -p "$NATS_PORT"
    taskset -c "$NODE_CPU" nats-server -a 127.0.0.1 -p "$NATS_PORT" >"$BENCH_OUT/nats.out" 2>&1 &
    REDIS_PID=$!
    sleep 0.5
    ENGINE_ARGS=(--node-set cluster.engine=nats
        --node-set "cluster.nats.urls=[\"nats://127.0.0.1:$NATS_PORT\"]"
        --node-set cluster.nats.subject_prefix=killbench)
fi
if [[ $ENGINE == redis-cluster ]]; then
    start_redis_cluster
    seeds="$(printf '"%s",' "${RC_SEEDS[@]}")"
    ENGINE_ARGS=(--node-set cluster.engine=redis-cluster
        --node-set "cluster.redis_cluster.nodes=[${seeds%,}]"
        --node-set cluster.redis_cluster.prefix=killbench)
fi
cmd=(taskset -c "$LOADGEN_CPU" "$ROOT/target/release/wscluster-killbench" --node-bin "$NODE_BIN"
    --node-cpu "$NODE_CPU" --rounds "$ROUNDS" --members "$MEMBERS"
    --log-dir "$BENCH_OUT/killbench" "${ENGINE_ARGS[@]}" "$@")
show "${cmd[@]}"
status=0
"${cmd[@]}" >"$BENCH_OUT/killbench.txt" 2>"$BENCH_OUT/killbench.log" || status=$?
cat "$BENCH_OUT/killbench.txt"
if [[ $status -ne 0 ]]; then
    echo "!! wscluster-killbench failed (exit $status):"
    tail -n 5 "$BENCH_OUT/killbench.log"
fi
echo "(nproc: $(nproc); per-round lines in $BENCH_OUT/killbench.log)"
exit "$status"
