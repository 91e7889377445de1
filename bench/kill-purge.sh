#!/usr/bin/env bash
# SIGKILL / SIGTERM → purge time on a 3-node cluster (wscluster-killbench, see bench/README.md,
# "Cluster benchmarks"): the nodes pinned to NODE_CPU (default 0), the benchmark's clients to
# LOADGEN_CPU (default 1). ROUNDS (default 30) kills per signal, MEMBERS (default 50) Presence
# members per node. Extra arguments go to wscluster-killbench (e.g. --signal KILL).
#
# Before the run it waits (10 s polls, up to 10 minutes) while cargo, rustc or another wscluster
# is running, and says so. Output: $BENCH_OUT/killbench.txt (figures), killbench.log (rounds),
# killbench/kb-N.log (node logs), commands.txt.

source "$(dirname "$0")/lib.sh"

ROUNDS="${ROUNDS:-30}"
MEMBERS="${MEMBERS:-50}"

ulimit -n "$(ulimit -Hn)"
header
show cargo build --release --bin wscluster --bin wscluster-killbench
cargo build --release --bin wscluster --bin wscluster-killbench
echo
wait_quiet
cmd=(taskset -c "$LOADGEN_CPU" "$ROOT/target/release/wscluster-killbench" --node-bin "$NODE_BIN"
    --node-cpu "$NODE_CPU" --rounds "$ROUNDS" --members "$MEMBERS"
    --log-dir "$BENCH_OUT/killbench" "$@")
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
