#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60). Exits non-zero on a finding;
# the input that failed is in fuzz/artifacts/<target>/. See fuzz/README.md.
#
# Usage: scripts/fuzz.sh [SECONDS]
#
# How it runs on this machine (stable Rust only): cargo fuzz passes nightly-only flags
# (-Zsanitizer, -Cpasses=sancov-module), which stable rustc accepts with RUSTC_BOOTSTRAP=1.
# AddressSanitizer is used when it builds; otherwise the targets run with `--sanitizer none`.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1

sanitizer=()
targets=$(cargo fuzz list)
first_target=$(echo "$targets" | head -n 1)
if ! cargo fuzz build "$first_target" >/dev/null 2>&1; then
    echo "fuzz.sh: the AddressSanitizer build failed; fuzzing with --sanitizer none" >&2
    sanitizer=(--sanitizer none)
fi

failed=()
summary=()
logs="$(mktemp -d -t natsring-fuzz.XXXXXX)"
trap 'rm -rf "$logs"' EXIT
for target in $targets; do
    mkdir -p "corpus/$target"
    corpora=("corpus/$target")
    if [ -d "seeds/$target" ]; then
        corpora+=("seeds/$target")
    fi
    echo "fuzz.sh: $target for ${seconds}s" >&2
    # -timeout: an input running this long is a hang (a finding), not just slow.
    # libFuzzer runs every seed first, so a seed that fails fails at once.
    if ! cargo fuzz run "${sanitizer[@]}" "$target" "${corpora[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 2>&1 |
        tee "$logs/$target.log" >&2; then
        failed+=("$target")
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$target.log")
    summary+=("$target: ${runs:-?} runs, ${rate:-?}/s")
done
printf 'fuzz.sh: %s\n' "${summary[@]}" >&2

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: findings in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: no finding in: $(echo $targets)" >&2
