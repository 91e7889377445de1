#!/usr/bin/env bash
# Single-node benchmarks of wscluster: one fresh node per scenario, pinned to one core
# (NODE_CPU, default 0), the load generator pinned to another (LOADGEN_CPU, default 1). The nodes
# run with the cluster engine off (NODE_FLAGS, default "--cluster-engine none").
#
#   bench/run.sh                       every scenario below
#   bench/run.sh fanout-1k idle        only the scenarios whose names start with these
#   BENCH_QUICK=1 bench/run.sh         short windows (smoke run)
#
# Prints the machine (nproc), every command, every scenario's table and a summary; keeps them all
# in BENCH_OUT (default target/bench/<date>-<time>): <scenario>.txt, results.jsonl, commands.txt.
# Only loopback addresses are used. See bench/README.md for what each figure means.

source "$(dirname "$0")/lib.sh"

# name | load generator arguments
SCENARIOS=(
    "fanout-1k-rate5k|fanout --subscribers 1000 --channels 100 --publishers 1 --rate 5000 --payload 100"
    "fanout-1k-max|fanout --subscribers 1000 --channels 100 --publishers 4 --rate 0 --payload 100"
    "fanout-10k-rate1k|fanout --subscribers 10000 --channels 100 --publishers 1 --rate 1000 --payload 100"
    "fanout-10k-max|fanout --subscribers 10000 --channels 100 --publishers 4 --rate 0 --payload 100"
    "idle-10k|idle --connections 10000 --channels 100"
    "presence-churn-1k|presence-churn --members 1000 --channels 100 --rate 1000"
    "presence-churn-10k|presence-churn --members 10000 --channels 1000 --rate 10000"
    "presence-members-1k|presence-members --members 1000 --requests 500"
    "presence-members-10k|presence-members --members 10000 --requests 500"
    "presence-fanout-1k-rate100|presence-fanout --members 1000 --channels 1 --publishers 1 --rate 100 --payload 100"
    "presence-fanout-1k-max|presence-fanout --members 1000 --channels 1 --publishers 4 --rate 0 --payload 100"
    "presence-fanout-10k-rate10|presence-fanout --members 10000 --channels 1 --publishers 1 --rate 10 --payload 100"
    "presence-fanout-10k-max|presence-fanout --members 10000 --channels 1 --publishers 4 --rate 0 --payload 100"
)

ulimit -n "$(ulimit -Hn)"
header
build
echo
for entry in "${SCENARIOS[@]}"; do
    name="${entry%%|*}"
    read -r -a args <<<"${entry#*|}"
    wanted "$name" "$@" || continue
    echo "== $name"
    # Idle and churn have no publish window; the others take the common window flags.
    case "${args[0]}" in
        fanout | presence-fanout | presence-churn) args+=("${WINDOW[@]}") ;;
    esac
    read -r -a node_flags <<<"${NODE_FLAGS---cluster-engine none}"
    if ! start_node "$name" "${node_flags[@]}"; then
        echo "!! $name: the node did not start"
        stop_nodes
        continue
    fi
    loadgen "$name" "${args[@]}"
    stop_nodes
done
summary
