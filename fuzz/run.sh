#!/usr/bin/env bash
# Builds and runs every fuzz target for SECONDS (default 60) each, one after another.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# fuzz/seeds/<target>/ is read-only seed input; new inputs go to fuzz/corpus/<target>/ (not
# committed) and crashes to fuzz/artifacts/<target>/. Exits non-zero if any target crashed.
# Extra libFuzzer flags can be passed in FUZZ_ARGS, e.g. FUZZ_ARGS="-jobs=2 -workers=2".
set -uo pipefail

cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

# -a: debug assertions, so that integer overflow and debug_assert! failures are crashes too.
cargo +nightly fuzz build -a || exit 2

failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    echo "== $t: ${seconds}s"
    # The first directory receives new inputs; the seed directory is only read.
    # shellcheck disable=SC2086
    # libFuzzer's progress lines go to a log; its final statistics and any crash are shown.
    mkdir -p artifacts
    log="artifacts/$t.log"
    if ! cargo +nightly fuzz run -a "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1; then
        failed+=("$t")
        tail -n 60 "$log"
        echo "!! $t failed; reproducers in fuzz/artifacts/$t/, full log in fuzz/$log"
    else
        grep -E '^(stat::|Done [0-9]+ runs)' "$log" || tail -n 5 "$log"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashed: ${failed[*]}"
    exit 1
fi
echo "no crashes"
