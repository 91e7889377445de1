#!/usr/bin/env bash
# Workload W on a 3-node cluster: the three nodes pinned together to one core (NODE_CPU, default
# 0), the load generator on the other (LOADGEN_CPU, default 1); 900 sgc subscribers over 100
# channels (9 per channel, 3 on each node), publishers on the first node, 100-byte payloads, at
# 1 000 and 5 000 publishes/s and at saturation. Also the same load on a single node (cluster
# engine off), for comparison.
#
#   bench/run-cluster.sh               W at 1 000/s, 5 000/s and saturation, and one node alone
#   bench/run-cluster.sh w-5k          only the runs whose names start with this
#   ENGINE=redis bench/run-cluster.sh  the same through Redis: a redis-server of its own (free port,
#                                      pinned to NODE_CPU with the nodes, its CPU time counted as
#                                      server time); REDIS_ROUTING=shared (default) or channel
#   ENGINE=redis-cluster bench/run-cluster.sh  the same through a three-master Redis Cluster of its
#                                      own (sharded Pub/Sub; every master pinned to NODE_CPU, its
#                                      CPU time counted as server time); REDIS_ROUTING as above
#   ENGINE=nats bench/run-cluster.sh   the same through NATS: a nats-server of its own, pinned and
#                                      counted like redis-server; NATS_ROUTING=shared or channel
#
# The load generator first probes until a publish on node 1 reaches subscribers on nodes 2 and 3;
# if the nodes are not clustered it stops with that message instead of reporting loss.
# cluster_flags below is how the nodes are told about each other: keep it in step with the
# binary's options (docs/configuration.md).

source "$(dirname "$0")/lib.sh"

CLUSTER_PORT_BASE="${CLUSTER_PORT_BASE:-17400}"
CLUSTER_SECRET="${CLUSTER_SECRET:-bench-cluster-secret}"
ENGINE="${ENGINE:-mesh}"
REDIS_ROUTING="${REDIS_ROUTING:-shared}"
REDIS_PORT=""
REDIS_PID=""
NATS_ROUTING="${NATS_ROUTING:-shared}"
NATS_PORT=""

# start_redis: a redis-server on a free loopback port, pinned to NODE_CPU.
start_redis() {
    REDIS_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    show taskset -c "$NODE_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no
    taskset -c "$NODE_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" \
        --appendonly no --loglevel warning >"$BENCH_OUT/redis.out" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do
        redis_up && break
        sleep 0.05
    done
    redis_up || { echo "!! redis-server did not start"; cat "$BENCH_OUT/redis.out"; return 1; }
    echo "redis-server: pid $REDIS_PID, port $REDIS_PORT"
}
redis_up() { (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; }

# start_nats: a nats-server on a free loopback port, pinned to NODE_CPU (its PID in REDIS_PID: the
# broker's, measured and stopped with the nodes).
start_nats() {
    NATS_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    show taskset -c "$NODE_CPU" nats-server -a 127.0.0.1 -p "$NATS_PORT"
    taskset -c "$NODE_CPU" nats-server -a 127.0.0.1 -p "$NATS_PORT" >"$BENCH_OUT/nats.out" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do
        nats_up && break
        sleep 0.05
    done
    nats_up || { echo "!! nats-server did not start"; cat "$BENCH_OUT/nats.out"; return 1; }
    echo "nats-server: pid $REDIS_PID, port $NATS_PORT"
}
nats_up() { (exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null; }

# cluster_flags I: sets CLUSTER_FLAGS to the flags of node I (1..3): mesh bound to loopback on
# port CLUSTER_PORT_BASE+I, every other node as a peer, a shared secret (docs/configuration.md).
cluster_flags() {
    local i="$1" j
    if [[ $ENGINE == redis ]]; then
        CLUSTER_FLAGS=(
            --node-name "bench-$i"
            --cluster-engine redis
            --redis-port "$REDIS_PORT"
            --redis-channel bench
            --redis-routing "$REDIS_ROUTING"
        )
        return
    fi
    if [[ $ENGINE == redis-cluster ]]; then
        CLUSTER_FLAGS=(
            --node-name "bench-$i"
            --cluster-engine redis-cluster
            --set cluster.redis_cluster.prefix=bench
            --set "cluster.redis_cluster.routing=$REDIS_ROUTING"
        )
        for j in "${RC_SEEDS[@]}"; do
            CLUSTER_FLAGS+=(--redis-cluster-node "$j")
        done
        return
    fi
    if [[ $ENGINE == nats ]]; then
        CLUSTER_FLAGS=(
            --node-name "bench-$i"
            --cluster-engine nats
            --nats-url "nats://127.0.0.1:$NATS_PORT"
            --nats-subject-prefix bench
            --nats-routing "$NATS_ROUTING"
        )
        return
    fi
    CLUSTER_FLAGS=(
        --node-name "bench-$i"
        --cluster-engine mesh
        --set cluster.mesh.bind=127.0.0.1
        --cluster-port "$((CLUSTER_PORT_BASE + i))"
        --cluster-secret "$CLUSTER_SECRET"
    )
    for j in 1 2 3; do
        [[ $j == "$i" ]] || CLUSTER_FLAGS+=(--peer "127.0.0.1:$((CLUSTER_PORT_BASE + j))")
    done
}

W=(fanout --subscribers 900 --channels 100 --payload 100)

ulimit -n "$(ulimit -Hn)"
header
build
echo
run_w() {
    local name="$1"
    shift
    wanted "$name" "${WANT[@]}" || return 0
    echo "== $name"
    local i
    if [[ $ENGINE == redis ]]; then
        start_redis || return 0
    elif [[ $ENGINE == nats ]]; then
        start_nats || return 0
    fi
    if [[ $ENGINE == redis-cluster ]]; then
        start_redis_cluster
    fi
    for i in 1 2 3; do
        cluster_flags "$i"
        if ! start_node "$name-node$i" "${CLUSTER_FLAGS[@]}"; then
            echo "!! $name: node $i did not start (is the cluster in this build?)"
            stop_nodes
            return 0
        fi
    done
    # The broker counts as server time: its PID is measured with the nodes' (and stopped with them).
    [[ -n $REDIS_PID ]] && NODE_PIDS+=("$REDIS_PID") && REDIS_PID=""
    NODE_PIDS+=("${RC_PIDS[@]}") && RC_PIDS=()
    loadgen "$name" --publisher-url "${NODE_URLS[0]}" "${W[@]}" "$@" "${WINDOW[@]}"
    stop_nodes
}
run_single() {
    local name="$1"
    shift
    wanted "$name" "${WANT[@]}" || return 0
    echo "== $name"
    start_node "$name" --cluster-engine none || { stop_nodes; return 0; }
    loadgen "$name" "${W[@]}" "$@" "${WINDOW[@]}"
    stop_nodes
}
WANT=("$@")
PREFIX=""
[[ $ENGINE == redis ]] && PREFIX="redis-$REDIS_ROUTING-"
[[ $ENGINE == redis-cluster ]] && PREFIX="redis-cluster-$REDIS_ROUTING-"
[[ $ENGINE == nats ]] && PREFIX="nats-$NATS_ROUTING-"
run_w "${PREFIX}w-1k" --publishers 1 --rate 1000
run_w "${PREFIX}w-5k" --publishers 1 --rate 5000
run_w "${PREFIX}w-max" --publishers 4 --rate 0
[[ $ENGINE != mesh ]] && { summary; exit 0; }
run_single w-single-node-1k --publishers 1 --rate 1000
run_single w-single-node-5k --publishers 1 --rate 5000
run_single w-single-node-max --publishers 4 --rate 0
summary
