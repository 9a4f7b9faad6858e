#!/bin/sh
# test_fuzz.sh - runs the libFuzzer target over pool files
# (tests/fuzz/fuzz_pool.c, built by `make fuzz` with clang and ASan+UBSan)
# for L1_FUZZ_SECONDS (default 60; 0 skips, as the sanitizer pass of CI does,
# since the target is a sanitized build already).  Seeds: the committed
# tests/fuzz/corpus plus the same minimal pools generated afresh by the
# target itself (so a format change cannot leave stale seeds behind).  Any
# crash, sanitizer report, leak or timeout fails the test; the input that
# did it is kept in build/fuzz/ to replay (`build/fuzz/fuzz_pool FILE`).
# Longer runs: L1_FUZZ_SECONDS=3600 sh tests/sh/test_fuzz.sh
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
secs=${L1_FUZZ_SECONDS:-60}
if [ "$secs" -eq 0 ]; then
	echo "fuzz: skipped (L1_FUZZ_SECONDS=0)"
	exit 0
fi
if ! command -v "${FUZZ_CC:-clang-14}" >/dev/null 2>&1; then
	echo "fuzz: ${FUZZ_CC:-clang-14} is not installed: run tools/install-deps.sh (as root)"
	exit 1
fi
work=$(mktemp -d /tmp/l1fuzz.XXXXXX)
bg=""
trap '[ -n "$bg" ] && kill $bg 2>/dev/null; rm -rf "$work"' EXIT

# waits for the background job bg, printing a line every 10 s of the test
# (what $1 prints) while it runs, so the test is never silent for long
t=0
tick() {
	while kill -0 "$bg" 2>/dev/null; do
		sleep 1
		t=$((t + 1))
		[ $((t % 10)) -eq 0 ] && echo "fuzz: $t s: $($1)"
	done
	wait "$bg"
	st=$?
	bg=""
	return $st
}

echo "fuzz: building the target (make fuzz)"
make -s fuzz >/dev/null &
bg=$!
tick "echo building the target" || { echo "fuzz: build failed (make fuzz)"; exit 1; }
mkdir "$work/corpus" "$work/seeds"
L1_FUZZ_MAKE_CORPUS="$work/seeds" build/fuzz/fuzz_pool >"$work/gen.log" 2>&1 || {
	cat "$work/gen.log"; echo "fuzz: generating the seed pools failed"; exit 1; }
build/fuzz/fuzz_pool -max_total_time="$secs" -max_len=65536 -timeout=30 \
	-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/" \
	"$work/corpus" "$work/seeds" tests/fuzz/corpus >"$work/log" 2>&1 &
bg=$!
# libFuzzer's latest count of inputs and coverage
fuzz_now() { grep -E '^#[0-9]+' "$work/log" | tail -n 1 | awk '{print "fuzzing for '"$secs"' s:", $1, $3, $4}'; }
tick fuzz_now
rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
cov=$(sed -n 's/^.*DONE *cov: \([0-9]*\).*/\1/p' "$work/log" | tail -1)
n=$(ls "$work/corpus" | wc -l)
if [ "$rc" -ne 0 ]; then
	grep -v '^#' "$work/log" | tail -60
	for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
		[ -e "$f" ] && cp "$f" build/fuzz/ && echo "fuzz: kept build/fuzz/$(basename "$f")"
	done
	echo "fuzz: FAILED after ${runs:-?} executions (exit $rc)"
	exit 1
fi
echo "fuzz: ${runs:-?} executions in ${secs} s, ${cov:-?} edges covered, ${n} new inputs kept; no crash, leak or sanitizer report"
