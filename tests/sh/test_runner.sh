#!/bin/sh
# test_runner.sh - tests/run.sh itself, run on stand-in test programs (a
# private BUILD directory whose tests/check_* are small scripts), with a
# small page budget and no competing process:
#   - the closing lines count programs, then checks, as "N passed, N failed";
#   - a program killed by a signal is reported with the signal and its last
#     lines;
#   - Ctrl-C (SIGINT to the process group) during a program: the run says it
#     was interrupted, during which program, and exits 130;
#   - either way its hugetlbfs mount is gone afterwards.
# Exit status: 0 if every check passed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
tmp=$(mktemp -d /tmp/l1runner.XXXXXX)
fail=0
. "$ROOT/tests/sh/testlib.sh"
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/build/tests"
cat >"$tmp/build/tests/check_good" <<'EOF'
#!/bin/sh
echo "Running suite(s): good"
echo "100%: Checks: 5, Failures: 0, Errors: 0"
EOF
cat >"$tmp/build/tests/check_segv" <<'EOF'
#!/bin/sh
echo "Running suite(s): segv"
echo "the last line before the crash"
kill -SEGV $$
EOF
cat >"$tmp/build/tests/check_slow" <<'EOF'
#!/bin/sh
echo "Running suite(s): slow"
exec sleep 60
EOF
chmod +x "$tmp/build/tests"/check_*
runner() { # L1_TEST_ONLY, output file
	env BUILD="$tmp/build" L1_TEST_HUGEPAGES=64 L1_TEST_NEIGHBOUR=0 L1_TEST_ONLY="$1" \
		sh tests/run.sh >"$2" 2>&1
}
# gone OUT: the hugetlbfs the run in OUT mounted (if any) is not mounted
gone() {
	m=$(sed -n 's/^tests: hugetlbfs at \([^,]*\),.*/\1/p' "$1")
	[ -z "$m" ] || ! awk -v m="$m" '$2 == m {f = 1} END {exit !f}' /proc/mounts
}

runner "check_good check_segv" "$tmp/out"
rc=$?
sed 's/^/    /' "$tmp/out"
check "a failed program: exit status 1" test $rc -eq 1
check "the programs counted" grep -q "^test programs: 1 passed, 1 failed$" "$tmp/out"
check "the checks counted, on the last line" sh -c "tail -n 1 '$tmp/out' | grep -qx 'tests: 5 passed, 1 failed'"
check "the signal named" grep -q "^=== check_segv died of signal SIGSEGV (exit status 139); its last lines:" "$tmp/out"
check "its last lines shown" grep -q "^    the last line before the crash" "$tmp/out"
check "the hugetlbfs mount is gone" gone "$tmp/out"

if ! command -v setsid >/dev/null; then
	say "skip the interrupted run: setsid missing (util-linux)"
else
	ctrl_c_run "$tmp/out2" "^=== check_slow" 1 env BUILD="$tmp/build" \
		L1_TEST_HUGEPAGES=64 L1_TEST_NEIGHBOUR=0 L1_TEST_ONLY="check_good check_slow" \
		sh tests/run.sh
	rc=$?
	sed 's/^/    /' "$tmp/out2"
	check "interrupted: exit status 130" test $rc -eq 130
	check "interrupted: it says so, and during what" \
		sh -c "tail -n 1 '$tmp/out2' | grep -q '^tests: interrupted by SIGINT during check_slow'"
	check "interrupted: no closing count that could read as a pass" \
		sh -c "! grep -q 'passed, 0 failed' '$tmp/out2'"
	check "interrupted: the hugetlbfs mount is gone" gone "$tmp/out2"
fi

[ $fail -eq 0 ] && say "test_runner.sh: all checks passed"
exit $fail
