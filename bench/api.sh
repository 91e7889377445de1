#!/usr/bin/env bash
# The server API benchmark: one release node pinned to NODE_CPU (default 0) with an API key,
# `wscluster-apibench` pinned to LOADGEN_CPU (default 1) publishing 100-byte messages over 16
# keep-alive connections, without pipelining and with 4 requests in flight per connection. Prints
# the generator's figures and the node's CPU time over each run (from /proc). bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_CPU=${NODE_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
SECONDS_RUN=${SECONDS_RUN:-10}
PORT=${PORT:-18080}
KEY=$(head -c 24 /dev/urandom | base64 | tr -d '/+=' )
echo "nproc $(nproc); $(uptime)"
cargo build --release --bin wscluster --bin wscluster-apibench
taskset -c "$NODE_CPU" target/release/wscluster --listen "127.0.0.1:$PORT" --cluster-engine none \
  --set "api.keys=[{name=\"bench\",key=\"$KEY\",scopes=[\"publish\"]}]" --set node.log_level=warn \
  >/dev/null 2>&1 &
NODE=$!
trap 'kill $NODE 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
cpu() { awk '{print $14+$15}' "/proc/$NODE/stat"; }
for pipeline in 1 4; do
  before=$(cpu)
  WSCLUSTER_APIBENCH_KEY=$KEY taskset -c "$LOADGEN_CPU" target/release/wscluster-apibench \
    --target "127.0.0.1:$PORT" --connections 16 --pipeline "$pipeline" --message-bytes 100 \
    --warmup 0 --seconds "$SECONDS_RUN"
  after=$(cpu)
  echo "node_cpu_seconds=$(awk -v a="$before" -v b="$after" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", (b-a)/hz}')"
done
