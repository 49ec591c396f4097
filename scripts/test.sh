#!/usr/bin/env bash
# scripts/test.sh - the whole check, as CI runs it: deps, a -Werror build and every test in
# build/, then the same again under ASan+UBSan in build-asan/. Exits non-zero on any failure.
#
# Environment:
#   SY_TEST_SKIP_DEPS=1   do not run scripts/deps.sh
#   SY_TEST_SKIP_ASAN=1   only the plain build (quick local runs)
#   SY_TEST_JOBS=N        build and ctest parallelism (default 2)
#   SY_CTEST_ARGS="..."   extra ctest arguments, e.g. "-L e2e" or "-R chat"
#   SY_TEST_OUT=DIR       where build/ and build-asan/ go (default: the repo root)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
jobs=${SY_TEST_JOBS:-2}
out=${SY_TEST_OUT:-$root}
read -r -a ctest_extra <<<"${SY_CTEST_ARGS:-}"

results=()  # "step|status|seconds"
failed=0
total_pass=0
total_fail=0

banner() { printf '\n==== %s ====\n' "$*"; }

# Runs "$@" as step <name>, timing it and recording the outcome.
step() {
    local name=$1
    shift
    banner "$name"
    local t0=$SECONDS
    "$@"
    local rc=$?
    local dt=$((SECONDS - t0))
    if [ $rc -eq 0 ]; then
        results+=("$name|ok|$dt")
    else
        results+=("$name|FAILED (exit $rc)|$dt")
        failed=1
    fi
    return $rc
}

# Runs ctest in <dir>, teeing its output so the counts can be summed up.
run_ctest() {
    local dir=$1
    local out="$dir/ctest-output.txt"
    ctest --test-dir "$dir" --output-on-failure --no-tests=error -j"$jobs" --timeout 600 \
        "${ctest_extra[@]}" 2>&1 | tee "$out"
    local rc=${PIPESTATUS[0]}
    # "100% tests passed, 0 tests failed out of 12"
    local line
    line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$out" | tail -1)
    if [ -n "$line" ]; then
        local nfail ntotal
        nfail=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
        ntotal=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
        total_pass=$((total_pass + ntotal - nfail))
        total_fail=$((total_fail + nfail))
    elif [ $rc -ne 0 ]; then
        total_fail=$((total_fail + 1))
    fi
    return $rc
}

# One suite: configure, build, test in <dir> with extra cmake arguments.
suite() {
    local label=$1 dir=$2
    shift 2
    step "$label: configure" cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSY_WERROR=ON "$@" ||
        return 1
    step "$label: build" cmake --build "$dir" -j"$jobs" || return 1
    step "$label: ctest" run_ctest "$dir"
}

start=$SECONDS
if [ "${SY_TEST_SKIP_DEPS:-0}" != 1 ]; then
    step "deps" ./scripts/deps.sh
fi

if [ $failed -eq 0 ]; then
    suite "plain" "$out/build" -DSY_SANITIZE=OFF
    if [ "${SY_TEST_SKIP_ASAN:-0}" != 1 ]; then
        # Sanitizer findings fail the run: leaks at exit (LSan), UB aborts with a stack.
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            suite "asan+ubsan" "$out/build-asan" -DSY_SANITIZE=ON
    fi
fi

banner "summary ($((SECONDS - start)) s)"
for r in "${results[@]}"; do
    IFS='|' read -r name status dt <<<"$r"
    printf '  %-24s %-22s %5s s\n' "$name" "$status" "$dt"
done
echo "ctest: $total_pass passed, $total_fail failed"
if [ $failed -ne 0 ]; then
    echo "test.sh: FAILED"
    exit 1
fi
echo "test.sh: all green"
