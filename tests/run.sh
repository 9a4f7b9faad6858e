#!/bin/sh
# run.sh - runs every l1arena test: the Check suites (build/tests/check_*),
# the shell tests (tests/sh/test_*.sh) and the Python tests (tests/python).
# As root it adds huge pages for the run (L1_TEST_HUGEPAGES, default 768) and
# mounts a private hugetlbfs that reserves them (min_size=) and may take no
# more (size=), so another program cannot take them and no test takes more;
# at the end it unmounts and gives back what it added, by difference, since
# others may change the count meanwhile.  Without root the pools go to
# /dev/shm.  With L1_TEST_NEIGHBOUR=1 (the default as root) a competing
# process (tests/sh/neighbour.sh) reserves, holds and releases a few hundred
# huge pages of its own the whole time, as a database or DPDK would on a
# shared server; the suite must pass regardless.
# Each test sees: BUILD, L1_TEST_DIR (where to put pools),
# L1_TEST_HUGETLBFS=1|0, L1_TEST_SHM_DIR (a private /dev/shm directory).
# L1_TEST_ONLY names the programs to run (default: all).
# A program that dies says how (signal, exit status) and shows its last
# lines.  The last line counts checks (Check's, the shell tests' ok/FAIL
# lines, pytest's): "tests: N passed, N failed"; the line before it counts
# programs.  Exit status: non-zero if any test failed or the run was
# interrupted.
set -u
BUILD=${BUILD:-build}
export BUILD
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. "$ROOT/tools/hugepages.sh"
pages=${L1_TEST_HUGEPAGES:-768}
added=""
mnt=""
neighbour=""
shmdir=$(mktemp -d "/dev/shm/l1test-$(id -u).XXXXXX")
chmod 755 "$shmdir"    # tests that drop to user nobody open pools here
logdir=$(mktemp -d /tmp/l1test-logs.XXXXXX)
export L1_TEST_SHM_DIR="$shmdir"

stop_neighbour() {
	[ -n "$neighbour" ] || return 0
	kill -TERM "$neighbour" 2>/dev/null
	wait "$neighbour" 2>/dev/null
	neighbour=""
}

cleanup() {
	stop_neighbour
	if [ -n "$mnt" ]; then
		umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
		rmdir "$mnt" 2>/dev/null
	fi
	# by difference: others may have changed the count meanwhile
	[ -n "$added" ] && hp_change "-$added" >/dev/null
	rm -rf "$shmdir" "$logdir" 2>/dev/null
}
interrupted() {
	trap '' INT TERM
	echo
	echo "tests: interrupted by SIG$1 during ${current:-the set-up}; the results above are incomplete"
	exit 130
}
trap cleanup EXIT
trap 'interrupted INT' INT
trap 'interrupted TERM' TERM
current=""

export L1_TEST_HUGETLBFS=0
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/vm/nr_hugepages ]; then
	mnt=$(mktemp -d /tmp/l1test-hugetlbfs.XXXXXX)
	# min_size= reserves the pages for this mount at once, taken under the
	# lock of tools/hugepages.sh right after adding them; size= caps it, so
	# a test that exhausts huge pages exhausts this mount, not the machine
	set -- $(hp_locked hp_take_now "$pages" "$mnt" 1777)
	added=$1 got=$2
	if [ "$got" -lt 64 ] && [ "$got" -gt 0 ]; then
		umount "$mnt"
		got=0
	fi
	if [ "$got" -gt 0 ]; then
		export L1_TEST_DIR="$mnt" L1_TEST_HUGETLBFS=1
		echo "tests: hugetlbfs at $mnt, $got huge pages reserved for this run"
		if [ "${L1_TEST_NEIGHBOUR:-1}" = 1 ]; then
			sh tests/sh/neighbour.sh >"$logdir/neighbour" 2>&1 &
			neighbour=$!
			echo "tests: a competing process (tests/sh/neighbour.sh, pid $neighbour) takes and gives back huge pages during the run"
		fi
	else
		echo "tests: no huge pages could be reserved; pools go to /dev/shm"
		rmdir "$mnt"; mnt=""
	fi
else
	echo "tests: not root; pools go to /dev/shm (shm fallback)"
fi

pass=0; fail=0; failed=""
cpass=0; cfail=0
# L1_TEST_ONLY="check_arena test_fuse.sh python": run only these programs
only=${L1_TEST_ONLY:-}

# count NAME LOG RC: adds the checks the program's output reports
count() {
	n=$1 log=$2 rc=$3 p=0 f=0
	case $n in
	check_*)
		set -- $(sed -n 's/^[0-9]*%: Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p' "$log" | tail -n 1)
		[ $# -eq 3 ] && { f=$(($2 + $3)); p=$(($1 - f)); } ;;
	python)
		s=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error)' "$log" | tail -n 1)
		p=$(echo "$s" | sed -n 's/.*\b\([0-9][0-9]*\) passed.*/\1/p')
		f1=$(echo "$s" | sed -n 's/.*\b\([0-9][0-9]*\) failed.*/\1/p')
		f2=$(echo "$s" | sed -n 's/.*\b\([0-9][0-9]*\) error.*/\1/p')
		p=${p:-0}; f=$((${f1:-0} + ${f2:-0})) ;;
	*)
		p=$(grep -c '^ok ' "$log"); f=$(grep -c '^FAIL' "$log") ;;
	esac
	# a program that reports no checks counts as one; one that failed
	# without a failed check counts one failure
	[ $((p + f)) -eq 0 ] && { [ "$rc" -eq 0 ] && p=1 || f=1; }
	[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	cpass=$((cpass + p)); cfail=$((cfail + f))
}

# died NAME LOG RC: says how a program ended when it failed
died() {
	n=$1 log=$2 rc=$3
	if [ "$rc" -gt 128 ]; then
		echo "=== $n died of signal SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128))) (exit status $rc); its last lines:"
	elif [ "$n" = python ] && ! grep -Eq '[0-9]+ (passed|failed)' "$log"; then
		echo "=== $n stopped with exit status $rc before pytest's summary; its last lines:"
	else
		return 0
	fi
	tail -n 15 "$log" | sed 's/^/    /'
}

run_one() { # name, command...
	name=$1; shift
	if [ -n "$only" ]; then
		case " $only " in *" $name "*) ;; *) return 0 ;; esac
	fi
	current=$name
	echo "=== $name"
	log=$logdir/$name.log
	{ "$@" 2>&1; echo $? >"$log.rc"; } | tee "$log"
	rc=$(cat "$log.rc" 2>/dev/null || echo 1)
	count "$name" "$log" "$rc"
	if [ "$rc" -eq 0 ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1)); failed="$failed $name"
		died "$name" "$log" "$rc"
	fi
	current=""
}

for t in "$BUILD"/tests/check_*; do
	[ -x "$t" ] || continue
	run_one "$(basename "$t")" env CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120} "$t"
done
for t in tests/sh/test_*.sh; do
	[ -f "$t" ] || continue
	run_one "$(basename "$t")" sh "$t"
done
if [ -d tests/python ] && ls tests/python/test_*.py >/dev/null 2>&1; then
	# a sanitized build: tests/python/conftest.py starts pytest again with
	# the sanitizer runtime (and, for ASan, libstdc++) preloaded
	run_one python env PYTHONPATH="$ROOT/tools/python" L1ARENA_LIB="$ROOT/$BUILD/lib/libl1arena.so" \
		/usr/bin/python3 -m pytest -q -rs -p no:cacheprovider tests/python
fi

if [ -n "$neighbour" ]; then
	current=neighbour
	stop_neighbour
	echo "=== neighbour (the competing process)"
	sed 's/^/    /' "$logdir/neighbour" | tail -n 5
	if grep -q "^neighbour: done:" "$logdir/neighbour" && ! grep -q "FAIL" "$logdir/neighbour"; then
		cpass=$((cpass + 1))
	else
		echo "FAIL the competing process did not finish cleanly"
		cfail=$((cfail + 1)); fail=$((fail + 1)); failed="$failed neighbour"
	fi
fi

[ -n "$failed" ] && echo "failed test programs:$failed"
echo "test programs: $pass passed, $fail failed"
echo "tests: $cpass passed, $cfail failed"
[ "$fail" -eq 0 ]
