#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (libFuzzer): every target, or those named as arguments.
#
#   scripts/fuzz.sh                      # every target, FUZZ_SECONDS (default 300) each
#   FUZZ_SECONDS=60 scripts/fuzz.sh sgc_reader envelope_decoder
#   FUZZ_CMIN=1 scripts/fuzz.sh          # minimise each corpus (cargo fuzz cmin) after its run
#
# Not run by CI or scripts/test.sh. Crashes land in fuzz/artifacts/<target>/; reproduce one with
# `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>`.
#
# Toolchain: cargo fuzz needs nightly-only flags (-Zsanitizer=address, -Cpasses=sancov-module …).
# Only stable Rust is assumed here, so RUSTC_BOOTSTRAP=1 unlocks them on the stable compiler;
# AddressSanitizer works that way (checked with rustc 1.95.0 on x86_64 Linux). Where it does not
# (another target platform), set FUZZ_SANITIZER=none to fall back to `cargo fuzz run --sanitizer
# none` (libFuzzer coverage and Rust's own checks only).
set -euo pipefail

cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-300}"
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

logs="fuzz/target/logs"
mkdir -p "$logs"
failed=()
summary=()
for t in "${targets[@]}"; do
    echo "==> $t: ${seconds}s (sanitizer: $sanitizer)"
    mkdir -p "fuzz/corpus/$t"
    log="$logs/$t.log"
    status=0
    (cd fuzz && cargo fuzz run --sanitizer "$sanitizer" "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1) \
        >"$log" 2>&1 || status=$?
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)"
    done_line="$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 || true)"
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        tail -n 40 "$log"
        echo "!! $t failed (exit $status); log: $log; artifacts: fuzz/artifacts/$t/"
    elif [ "${FUZZ_CMIN:-0}" = 1 ]; then
        (cd fuzz && cargo fuzz cmin --sanitizer "$sanitizer" "$t" "corpus/$t" -- -rss_limit_mb=2048 -max_len=65536) \
            >"$logs/$t.cmin.log" 2>&1
    fi
    files="$(find "fuzz/corpus/$t" -type f | wc -l)"
    summary+=("$(printf '%-18s executions=%-10s %s corpus_files=%s status=%s' \
        "$t" "${runs:-?}" "${done_line:-(no Done line)}" "$files" "$status")")
done

echo
echo "==> summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
