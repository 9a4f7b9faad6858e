#!/bin/sh
# test_make_run.sh - the main job (`make run`, i.e. tools/run-main.sh) in its
# short, self-cleaning mode (L1_RUN_SHORT=1 L1_RUN_CLEANUP=1): it must pass
# (every byte the readers checked was right, the evictor kept the pool
# running full) and leave nothing behind: no view mounted, no pool file, no
# state file, the hugetlbfs mounts as they were, and every huge page it
# added given back.
#   1. on private paths: the pool in L1_TEST_DIR (tests/run.sh's hugetlbfs,
#      else /dev/shm), the view and state under a temporary directory;
#   2. as root, when nothing is at the defaults: with the defaults make run
#      uses (/dev/hugepages/l1arena, /run/l1arena/view), so the setup step
#      really reserves huge pages and mounts /dev/hugepages, and gives back;
#   3. as root, as the user nobody (when nobody may run the build): the run
#      says which step needs root, goes on without huge pages, and passes;
#   4. as root with hugetlbfs: most of the huge pages of a mount taken by
#      someone else: the run goes on with a smaller pool and says so;
#   5. as root, step 1 for real on a private directory that does not exist
#      yet (L1_RUN_HUGETLBFS): it adds huge pages, makes the directory,
#      mounts hugetlbfs there, and stop gives all of it back and removes it;
#   6. Ctrl-C (SIGINT to the process group) during the workload: the run
#      says it was interrupted, exits 130 (not 0), and still cleans up.
# Huge pages are checked by difference (what a run added, it gave back),
# since other programs change nr_hugepages meanwhile.
# Exit status: 0 if every check passed.
set -u
BUILD=${BUILD:-build}
export BUILD
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
. "$ROOT/tools/hugepages.sh"
RUN="sh tools/run-main.sh"
dir=${L1_TEST_DIR:-${L1_TEST_SHM_DIR:-/dev/shm/l1test-$(id -u)}}
tmp=$(mktemp -d /tmp/l1run-test.XXXXXX)
chmod 755 "$tmp"
fail=0

. "$ROOT/tests/sh/testlib.sh"

other=""
other_added=0
release_other() {
	[ -n "$other" ] || return 0
	rm -f "$other/someone-else"
	umount "$other" 2>/dev/null
	rmdir "$other" 2>/dev/null
	[ "$other_added" -gt 0 ] && hp_change "-$other_added" >/dev/null
	other_added=0
	other=""
}
cleanup() {
	release_other
	# only what a failed run could have left on the private paths
	for s in "$tmp/state" "$tmp/nobody/state"; do
		[ -f "$s/state" ] && L1_RUN_STATE=$s $RUN stop >/dev/null 2>&1
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for b in l1ctl kvdemo; do
	[ -x "$BUILD/bin/$b" ] || { say "FAIL $BUILD/bin/$b is not built (make bins)"; exit 1; }
done
mkdir -p "$dir"

is_mnt() { awk -v m="$1" '$2 == m {f = 1} END {exit !f}' /proc/mounts; }

# run_case NAME EXPECT_VIEW VIEW_DIR PREFIX ENV... : runs the short, cleaning
# run with ENV (under PREFIX, a command such as setpriv), checks that it
# passed, that it read through the view when it mounted one and said why
# when it did not, and that nothing is left.
run_case() {
	name=$1 want_view=$2 vdir=$3 prefix=$4
	shift 4
	hp0=0
	is_mnt /dev/hugepages && hp0=1
	$prefix env "$@" L1_RUN_SHORT=1 L1_RUN_CLEANUP=1 L1_RUN_SECONDS=3 $RUN >"$tmp/out" 2>&1
	rc=$?
	sed 's/^/    /' "$tmp/out" | grep -v '^    \[' | tail -n 40
	check "$name: make run exits 0" test $rc -eq 0
	check "$name: the workload passed" grep -q "^run: the workload passed" "$tmp/out"
	check "$name: kvdemo verified its reads" grep -q "^kvdemo: OK: every read matched" "$tmp/out"
	check "$name: progress lines were shown" grep -Eq "^\\[ *[0-9.]+s\\] +[0-9]+ objects" "$tmp/out"
	if grep -q "^run: step 3: mounted the view" "$tmp/out"; then
		check "$name: reads went through the view and zero-copy by path" \
			grep -Eq "view mmap, [0-9]+ view read, [1-9][0-9]* zero-copy" "$tmp/out"
		check "$name: ls -l of objects from the view" grep -q "ls -l .*/objects" "$tmp/out"
		check "$name: cat stats from the view" grep -q "^zeroing " "$tmp/out"
	else
		# no l1fs, or FUSE refused: the run must say so and go on
		check "$name: without a view, the run says why" \
			grep -Eq "^run: step 3: (no view|cannot mount|cannot create)" "$tmp/out"
		check "$name: without a view, l1ctl shows the objects" \
			grep -q "l1ctl ls --path" "$tmp/out"
		[ "$want_view" = 1 ] && say "note $name: l1fs is built and /dev/fuse usable, but no view was mounted"
	fi
	check "$name: it cleaned up" grep -q "^run: stopped: nothing of make run is left" "$tmp/out"
	pool=$(sed -n "s/^run: destroyed the pool //p" "$tmp/out")
	check "$name: the pool was destroyed" test -n "$pool"
	[ -n "$pool" ] && check "$name: no pool file at $pool" test ! -e "$pool"
	check "$name: the view is not mounted" sh -c "! awk -v m='$vdir' '\$2 == m {f=1} END {exit !f}' /proc/mounts"
	hp1=0
	is_mnt /dev/hugepages && hp1=1
	check "$name: /dev/hugepages mounted as before ($hp0)" test $hp0 -eq $hp1
	# by what it added, not to an absolute count: other programs (the
	# competing process of tests/run.sh among them) change it meanwhile
	added=$(sed -n 's/^run: step 1: added \([0-9]*\) huge pages.*/\1/p' "$tmp/out")
	back=$(sed -n 's/^run: gave back \([0-9]*\) huge pages.*/\1/p' "$tmp/out")
	check "$name: gave back the huge pages it added (${added:-0})" test "${back:-0}" -eq "${added:-0}"
}

# 1. private paths
if [ "${L1_TEST_HUGETLBFS:-0}" = 1 ]; then
	pool=$dir/l1run-$$
else
	pool=/dev/shm/l1run-$$
fi
pool0=$pool
view=0
[ -x "$BUILD/bin/l1fs" ] && [ -w /dev/fuse ] && view=1
run_case "private paths" $view "$tmp/view" "" L1ARENA_PATH="$pool" \
	L1_RUN_MOUNT="$tmp/view" L1_RUN_STATE="$tmp/state"
check "private paths: no state file" test ! -e "$tmp/state/state"
check "private paths: the view's directory is gone" test ! -e "$tmp/view"

# 2. the defaults, as make run has them
if [ "$(id -u)" -ne 0 ]; then
	say "skip the default paths: they need root"
elif [ -e /dev/hugepages/l1arena ] || [ -e /run/l1arena/state ] ||
	mountpoint -q /run/l1arena/view 2>/dev/null; then
	say "skip the default paths: a pool or a make run is there already"
elif [ "${L1_TEST_MAKE_RUN_DEFAULTS:-1}" = 0 ]; then
	say "skip the default paths: L1_TEST_MAKE_RUN_DEFAULTS=0"
else
	run_case "default paths" $view /run/l1arena/view "" L1ARENA_PATH= L1_RUN_MOUNT= \
		L1_RUN_STATE=
	if grep -q "going on without huge pages" "$tmp/out"; then
		check "default paths: without huge pages the pool was in /dev/shm" \
			grep -q "^run: destroyed the pool /dev/shm/l1arena$" "$tmp/out"
	else
		check "default paths: the pool was at /dev/hugepages/l1arena" \
			grep -q "^run: destroyed the pool /dev/hugepages/l1arena$" "$tmp/out"
	fi
	check "default paths: no state left in /run/l1arena" test ! -e /run/l1arena/state
fi

# 3. without root
NOBODY="setpriv --reuid=nobody --regid=nogroup --clear-groups"
as_nobody() { $NOBODY "$@"; }
if [ "$(id -u)" -ne 0 ]; then
	say "skip the run as nobody: this test is not root"
elif ! command -v setpriv >/dev/null || ! as_nobody test -x "$BUILD/bin/kvdemo" ||
	! as_nobody test -r tools/run-main.sh; then
	say "skip the run as nobody: nobody cannot read the build ($ROOT)"
else
	nview=0
	[ -x "$BUILD/bin/l1fs" ] && as_nobody test -w /dev/fuse && nview=1
	mkdir "$tmp/nobody" && chown nobody:nogroup "$tmp/nobody"
	run_case "as nobody" $nview "$tmp/nobody/view" "$NOBODY" L1ARENA_PATH= \
		L1_RUN_MOUNT="$tmp/nobody/view" L1_RUN_STATE="$tmp/nobody/state"
	# a user needs root for the huge pages unless a writable hugetlbfs with
	# enough free pages is there already
	if grep -q "needs root" "$tmp/out"; then
		check "as nobody: it names the step that needs root" \
			grep -q "^run: step 1 (reserve [0-9]* huge pages .*) needs root" "$tmp/out"
		check "as nobody: the pool went to /dev/shm" \
			grep -q "^run: destroyed the pool /dev/shm/l1arena-" "$tmp/out"
	else
		check "as nobody: huge pages were there already" grep -q "no root needed" "$tmp/out"
	fi
fi

# 4. most huge pages taken by someone else: a mount of 300 pages (added by
# difference and reserved for it with min_size=), 110 of them held by
# another file; a 512 MiB pool needs 262
if [ "$(id -u)" -ne 0 ] || [ "${L1_TEST_HUGETLBFS:-0}" != 1 ]; then
	say "skip the smaller pool: it needs root and hugetlbfs (tests/run.sh as root)"
else
	other=$(mktemp -d /tmp/l1run-other.XXXXXX)
	set -- $(hp_locked hp_take_now 300 "$other")
	other_added=$1
	if [ "$2" -eq 300 ] && fallocate -l 220M "$other/someone-else"; then
		run_case "smaller pool" $view "$tmp/view" "" L1ARENA_PATH="$other/l1run-$$" \
			L1_RUN_MOUNT="$tmp/view" L1_RUN_STATE="$tmp/state"
		check "smaller pool: the run says it goes on with a smaller pool" \
			grep -q "^run: step 1: going on with a smaller pool: 320 MiB on the 190 huge pages free" "$tmp/out"
		check "smaller pool: it was made that size" \
			grep -Eq "^run: step 2: created .*: 320(\.0+)? MiB lazy pool on hugetlbfs" "$tmp/out"
		check "smaller pool: the other file is untouched" test -e "$other/someone-else"
	else
		say "FAIL smaller pool: could not set up a hugetlbfs of 300 pages with 110 taken"
		fail=1
	fi
	release_other
fi

# 5. step 1 for real, on a private directory
if [ "$(id -u)" -ne 0 ]; then
	say "skip step 1 on a private directory: it needs root"
else
	hp=$tmp/hp/mnt
	mkdir "$tmp/hp"
	run_case "own hugetlbfs" $view "$tmp/view" "" L1_RUN_HUGETLBFS="$hp" L1ARENA_PATH="$hp/l1arena" \
		L1_RUN_MOUNT="$tmp/view" L1_RUN_STATE="$tmp/state"
	check "own hugetlbfs: step 1 mounted it" grep -q "^run: step 1: .*mounted hugetlbfs at $hp" "$tmp/out"
	check "own hugetlbfs: stop unmounted it" grep -q "^run: unmounted hugetlbfs at $hp" "$tmp/out"
	check "own hugetlbfs: stop removed the directory step 1 made" test ! -e "$hp"
	check "own hugetlbfs: and said so" grep -q "^run: removed $hp (a run made it)" "$tmp/out"
	awk -v m="$hp" '$2 == m {exit 1}' /proc/mounts || { umount "$hp"; say "FAIL own hugetlbfs: still mounted"; fail=1; }
fi

# 6. interrupted: as a Ctrl-C does, SIGINT to the run's process group once
# the workload runs
if ! command -v setsid >/dev/null; then
	say "skip the interrupted run: setsid missing (util-linux)"
else
	pool=$pool0-int
	ctrl_c_run "$tmp/out" "^run: step 4" 2 env L1ARENA_PATH="$pool" \
		L1_RUN_MOUNT="$tmp/view" L1_RUN_STATE="$tmp/state" L1_RUN_SHORT=1 L1_RUN_CLEANUP=1 \
		L1_RUN_SECONDS=60 $RUN
	rc=$?
	sed 's/^/    /' "$tmp/out" | grep -v '^    \[' | tail -n 12
	check "interrupted: exit status 130" test $rc -eq 130
	check "interrupted: it says so" grep -q "^run: interrupted by SIGINT during step 4" "$tmp/out"
	check "interrupted: kvdemo says it stopped early" grep -q "^kvdemo: INTERRUPTED by Interrupt" "$tmp/out"
	check "interrupted: no pass claimed" sh -c "! grep -q -e '^run: the workload passed' -e '^kvdemo: OK' '$tmp/out'"
	check "interrupted: it cleaned up" grep -q "^run: stopped: nothing of make run is left" "$tmp/out"
	check "interrupted: no pool file at $pool" test ! -e "$pool"
fi

[ $fail -eq 0 ] && say "test_make_run.sh: all checks passed"
exit $fail
