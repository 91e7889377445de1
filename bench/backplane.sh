#!/usr/bin/env bash
# Backplane bytes per publish on a 3-node cluster, with and without interest routing.
#
# Three nodes pinned together to NODE_CPU (default 0), clustered over the mesh on loopback
# (CLUSTER_PORT_BASE+1..3, default 17451-17453), JSON logs; the load generator on LOADGEN_CPU
# (default 1). sgc fan-out of 900 subscribers over 100 channels, one publisher on node 2, 100-byte
# payloads, 2 000 publishes/s for 5 s (no warmup, so the publishes counted are all of them but
# the few cross-node probes), in two layouts:
#   one-node  every subscriber on node 1 (--subscriber-nodes 1): each publish has receivers on
#             one other node only
#   spread    subscribers dealt to all three nodes (workload W: every channel has receivers on
#             every node)
# each with `cluster.interest_routing=true` and `=false`. The nodes are stopped with SIGTERM; each
# logs a `mesh stats` line (frames/bytes in and out of its mesh links since start) and
#   backplane bytes per publish = sum over nodes of bytes_out / publishes.
# A baseline run per combination (same setup, 1 publish/s) gives the bytes that do not come from
# publishes (handshakes, snapshots, interest, heartbeats over the same time); "net" subtracts it.
#
#   bench/backplane.sh                 all eight runs
#   bench/backplane.sh one-node-ir     only the runs whose names start with this
#
# Before each run it waits (10 s polls, up to 10 minutes) while cargo, rustc or another wscluster
# is running, and says so.

source "$(dirname "$0")/lib.sh"

CLUSTER_PORT_BASE="${CLUSTER_PORT_BASE:-17450}"
CLUSTER_SECRET="${CLUSTER_SECRET:-bench-cluster-secret}"
RATE="${RATE:-2000}"
SECONDS_MEASURED="${SECONDS_MEASURED:-5}"
LOAD=(fanout --subscribers 900 --channels 100 --payload 100 --publishers 1
    --warmup 0 --duration "$SECONDS_MEASURED")

# node_flags I IR: NODE_FLAGS of node I (1..3), interest routing IR (true/false).
node_flags() {
    local i="$1" j
    NODE_FLAGS=(
        --node-name "bp-$i" --cluster-engine mesh --set cluster.mesh.bind=127.0.0.1
        --cluster-port "$((CLUSTER_PORT_BASE + i))" --cluster-secret "$CLUSTER_SECRET"
        --set "cluster.interest_routing=$2" --log-format json
    )
    for j in 1 2 3; do
        [[ $j == "$i" ]] || NODE_FLAGS+=(--peer "127.0.0.1:$((CLUSTER_PORT_BASE + j))")
    done
}

# Sum of one `mesh stats` field over the nodes of run NAME.
mesh_sum() {
    local name="$1" field="$2" i total=0 v
    for i in 1 2 3; do
        v="$(jq -r "select(.fields.message == \"mesh stats\") | .fields.$field" \
            "$BENCH_OUT/$name-node$i.node.err" 2>/dev/null | tail -n1)"
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

TABLE="$BENCH_OUT/backplane.tsv"
printf 'run\tpublishes\tbytes_out\tframes_out\tbytes_per_publish\tdeliveries_per_s\tother_p50_us\tother_p99_us\n' >"$TABLE"

# run NAME IR RATE LOADGEN-ARGS...: one run on three fresh nodes.
run() {
    local name="$1" ir="$2" rate="$3" i
    shift 3
    wanted "$name" "${WANT[@]}" || return 0
    echo "== $name (interest_routing=$ir, $rate publishes/s)"
    wait_quiet
    for i in 1 2 3; do
        node_flags "$i" "$ir"
        start_node "$name-node$i" "${NODE_FLAGS[@]}" || { stop_nodes; return 0; }
    done
    loadgen "$name" --publisher-url "${NODE_URLS[1]}" "${LOAD[@]}" --rate "$rate" "$@"
    stop_nodes
    local json pubs bytes frames
    json="$(grep '^{' "$BENCH_OUT/$name.txt" | tail -n1)"
    pubs="$(jq -r '.publishes // 0' <<<"$json")"
    bytes="$(mesh_sum "$name" bytes_out)"
    frames="$(mesh_sum "$name" frames_out)"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$pubs" "$bytes" "$frames" \
        "$(awk -v b="$bytes" -v p="$pubs" 'BEGIN { if (p > 0) printf "%.1f", b / p; else printf "-" }')" \
        "$(jq -r '.deliveries_per_s // "-" | if type == "number" then floor else . end' <<<"$json")" \
        "$(jq -r '.latency_other_node_p50_us // "-"' <<<"$json")" \
        "$(jq -r '.latency_other_node_p99_us // "-"' <<<"$json")" >>"$TABLE"
    echo
}

ulimit -n "$(ulimit -Hn)"
header
build
echo
WANT=("$@")
for layout in one-node spread; do
    extra=()
    [[ $layout == one-node ]] && extra=(--subscriber-nodes 1)
    for ir in true false; do
        tag="$layout-$([[ $ir == true ]] && echo ir || echo no-ir)"
        run "$tag" "$ir" "$RATE" "${extra[@]}"
        run "$tag-baseline" "$ir" 1 "${extra[@]}"
    done
done

echo "== backplane ($(nproc) CPUs; commands in $COMMANDS)"
awk -F'\t' -v OFS='\t' '
    NR == 1 { print $0, "net_bytes_per_publish"; next }
    { row[$1] = $0; bytes[$1] = $3; pubs[$1] = $2; order[++n] = $1 }
    END {
        for (i = 1; i <= n; i++) {
            k = order[i]; base = k "-baseline"; net = "-"
            if ((base in bytes) && pubs[k] > pubs[base])
                net = sprintf("%.1f", (bytes[k] - bytes[base]) / (pubs[k] - pubs[base]))
            print row[k], net
        }
    }' "$TABLE" | column -t -s $'\t' | tee "$BENCH_OUT/backplane.txt"
