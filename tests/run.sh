#!/bin/sh
# run.sh - runs every l1arena test: the Check suites (build/tests/check_*),
# the shell tests (tests/sh/test_*.sh) and the Python tests (tests/python).
# As root it reserves huge pages for the run (L1_TEST_HUGEPAGES, default 768)
# and mounts a private hugetlbfs for the pool files, and gives both back at
# the end, whatever happens; without root the pools go to /dev/shm.
# Each test sees: BUILD, L1_TEST_DIR (where to put pools),
# L1_TEST_HUGETLBFS=1|0, L1_TEST_SHM_DIR (a private /dev/shm directory).
# L1_TEST_ONLY names the programs to run (default: all).  Exit status: non-zero if any test failed.
set -u
BUILD=${BUILD:-build}
export BUILD
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
pages=${L1_TEST_HUGEPAGES:-768}
added=""
mnt=""
shmdir=$(mktemp -d "/dev/shm/l1test-$(id -u).XXXXXX")
export L1_TEST_SHM_DIR="$shmdir"

cleanup() {
	if [ -n "$mnt" ]; then
		umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
		rmdir "$mnt" 2>/dev/null
	fi
	if [ -n "$added" ]; then
		# by difference: others may have changed the count meanwhile
		now=$(cat /proc/sys/vm/nr_hugepages)
		back=$((now - added)); [ "$back" -lt 0 ] && back=0
		echo "$back" >/proc/sys/vm/nr_hugepages
	fi
	rm -rf "$shmdir" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export L1_TEST_HUGETLBFS=0
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/vm/nr_hugepages ]; then
	before=$(cat /proc/sys/vm/nr_hugepages)
	echo $((before + pages)) >/proc/sys/vm/nr_hugepages
	added=$(($(cat /proc/sys/vm/nr_hugepages) - before))
	got=$(awk '/HugePages_Free/ {f=$2} /HugePages_Rsvd/ {r=$2} END {print f-r}' /proc/meminfo)
	[ "$got" -gt "$pages" ] && got=$pages
	mnt=$(mktemp -d /tmp/l1test-hugetlbfs.XXXXXX)
	# size= caps this run at the pages it set aside: a test that exhausts
	# huge pages exhausts this mount, not the machine
	if [ "$got" -ge 64 ] && mount -t hugetlbfs -o pagesize=2M,mode=1777,size=$((got * 2))M none "$mnt"; then
		export L1_TEST_DIR="$mnt" L1_TEST_HUGETLBFS=1
		echo "tests: hugetlbfs at $mnt, $got huge pages free"
	else
		echo "tests: no huge pages could be reserved; pools go to /dev/shm"
		rmdir "$mnt"; mnt=""
	fi
else
	echo "tests: not root; pools go to /dev/shm (shm fallback)"
fi

pass=0; fail=0; failed=""
# L1_TEST_ONLY="check_arena test_fuse.sh python": run only these programs
only=${L1_TEST_ONLY:-}
run_one() { # name, command...
	name=$1; shift
	if [ -n "$only" ]; then
		case " $only " in *" $name "*) ;; *) return 0 ;; esac
	fi
	echo "=== $name"
	if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); failed="$failed $name"; fi
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
	run_one python env PYTHONPATH="$ROOT/tools/python" L1ARENA_LIB="$ROOT/$BUILD/lib/libl1arena.so" \
		/usr/bin/python3 -m pytest -q -rs tests/python
fi

[ -n "$failed" ] && echo "failed test programs:$failed"
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
