#!/bin/sh
# test_metrics_lint.sh - tests/sh/metrics_lint.py, the metrics check that
# stands in for `promtool check metrics` (which comes with a Prometheus
# server): text the view could write wrongly must fail it, each for its own
# reason, and well-formed text must pass.  Where promtool is installed, it
# must agree on every case (the one promtool lets through, a series given
# twice, a scraper refuses, so the lint is stricter there).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# the system Python: python3-prometheus-client is installed for it
LINT="$(command -v /usr/bin/python3 || echo python3) $ROOT/tests/sh/metrics_lint.py"
tmp=$(mktemp -d /tmp/l1lint.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
say() { printf '%s\n' "$*"; }

# case EXPECT(0 pass|1 fail) WHAT PROMTOOL_AGREES(1|0) LINE...
case_() {
	want=$1 what=$2 agree=$3
	shift 3
	printf '%s\n' "$@" >"$tmp/m"
	$LINT "$tmp/m" >"$tmp/out" 2>&1
	got=$?
	why=""
	[ "$want" = 1 ] && why=" ($(head -n 1 "$tmp/out"))"
	if [ "$got" -eq "$want" ]; then say "ok   $what$why"
	else say "FAIL $what: metrics_lint exit $got, wanted $want"; sed 's/^/    /' "$tmp/out"; fail=1; fi
	if command -v promtool >/dev/null && [ "$agree" = 1 ]; then
		promtool check metrics <"$tmp/m" >/dev/null 2>&1
		p=$?
		[ "$p" -ne 0 ] && p=1
		if [ "$p" -eq "$want" ]; then say "ok   $what: promtool agrees"
		else say "FAIL $what: promtool exit $p, metrics_lint $got"; fail=1; fi
	fi
}

case_ 0 "well-formed gauges, a counter, labels" 1 \
	'# HELP l1arena_used_bytes Bytes allocated.' '# TYPE l1arena_used_bytes gauge' \
	'l1arena_used_bytes 123' '# HELP l1arena_allocs_total Allocations.' \
	'# TYPE l1arena_allocs_total counter' 'l1arena_allocs_total 5' \
	'# HELP l1arena_objects Objects by state.' '# TYPE l1arena_objects gauge' \
	'l1arena_objects{state="published"} 3' 'l1arena_objects{state="dirty"} 0' \
	'# HELP l1arena_info The pool.' '# TYPE l1arena_info gauge' \
	'l1arena_info{path="/dev/hugepages/x",backing="hugetlbfs"} 1'
H='# HELP x_a A.'
T='# TYPE x_a gauge'
case_ 1 "a counter without _total" 1 '# HELP x_allocs A.' '# TYPE x_allocs counter' 'x_allocs 1'
case_ 1 "no HELP" 1 '# TYPE x_used_bytes gauge' 'x_used_bytes 1'
case_ 1 "_total on a gauge" 1 '# HELP x_used_total U.' '# TYPE x_used_total gauge' 'x_used_total 1'
case_ 1 "camelCase name" 1 '# HELP x_fooBar U.' '# TYPE x_fooBar gauge' 'x_fooBar 1'
case_ 1 "camelCase label" 1 "$H" "$T" 'x_a{aB="1"} 1'
case_ 1 "not a base unit" 1 '# HELP x_t_milliseconds U.' '# TYPE x_t_milliseconds gauge' 'x_t_milliseconds 1'
case_ 1 "an abbreviated unit" 1 '# HELP x_t_sec U.' '# TYPE x_t_sec gauge' 'x_t_sec 1'
case_ 1 "the type in the name" 1 '# HELP x_gauge U.' '# TYPE x_gauge gauge' 'x_gauge 1'
case_ 1 "a colon in the name" 1 '# HELP x:a U.' '# TYPE x:a gauge' 'x:a 1'
case_ 1 "_count on a gauge" 1 '# HELP x_a_count U.' '# TYPE x_a_count gauge' 'x_a_count 1'
case_ 1 "le on a gauge" 1 "$H" "$T" 'x_a{le="1"} 1'
case_ 1 "HELP again after the samples" 1 "$H" "$T" 'x_a 1' "$H"
case_ 1 "a value that is not a number" 1 "$H" "$T" 'x_a abc'
case_ 1 "a label value without quotes" 1 "$H" "$T" 'x_a{a=1} 1'
case_ 1 "an unknown type" 1 "$H" '# TYPE x_a foo' 'x_a 1'
case_ 1 "a bad escape in a label value" 1 "$H" "$T" 'x_a{a="\q"} 1'
case_ 1 "a series given twice" 0 "$H" "$T" 'x_a{a="1"} 1' 'x_a{a="1"} 2'
case_ 1 "no metrics at all" 0 ''

[ $fail -eq 0 ] && say "test_metrics_lint.sh: all checks passed"
exit $fail
