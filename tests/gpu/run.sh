#!/bin/sh
# run.sh - the GPU checks of pinning (issue 4), for a machine with an NVIDIA
# GPU and the CUDA runtime; not part of `make check`.  From any directory:
#   sh tests/gpu/run.sh            build, reserve huge pages, run gpu_pin (+ check_pin)
#   sh tests/gpu/run.sh --bench    the same, then `l1bench h2d` (full sizes)
#   sh tests/gpu/run.sh --mock     dry run without a GPU: a mock libcudart
#                                  (tests/gpu/mock_cudart.c) and small sizes
# It installs what is missing (tools/install-deps.sh; offline it goes on with
# what is there), builds into $BUILD (default build/gpu), and as root
# reserves huge pages (L1_GPU_HUGEPAGES, default 1536 of 2 MiB; 8704 with
# --bench) on a private hugetlbfs mount; without root or pages the pools go
# to /dev/shm with the shm fallback.  Pages, mount and pool files are given
# back on exit, whatever happens.  Takes about a minute; each program runs
# under `timeout`.  Exit: 0 passed, 1 failed, 77 no GPU (skipped).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BUILD=${BUILD:-build/gpu}
bench=0; mock=0
for a in "$@"; do
	case $a in
	--bench) bench=1 ;;
	--mock) mock=1 ;;
	*) echo "usage: $0 [--bench] [--mock]" >&2; exit 2 ;;
	esac
done
say() { echo "gpu/run.sh: $*"; }

if [ $mock -eq 0 ]; then
	gpu=0
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then
		gpu=1
		nvidia-smi -L
		nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
	elif ls /dev/nvidia[0-9]* >/dev/null 2>&1; then
		gpu=1
	fi
	if [ $gpu -eq 0 ]; then
		say "SKIP: no NVIDIA GPU here (no nvidia-smi -L output, no /dev/nvidia0)"
		exit 77
	fi
fi

# ---- build ------------------------------------------------------------------
sh tools/install-deps.sh || say "install-deps failed (offline?); building with what is installed"
jobs=$(nproc 2>/dev/null || echo 4)
if ! make -s -j"$jobs" lib BUILD="$BUILD"; then
	say "FAIL: make lib did not build"
	exit 1
fi
LIBS="$(pkg-config --libs liburing 2>/dev/null || echo -luring) -ldl -lpthread"
mkdir -p "$BUILD/tests"
if ! cc -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iarena \
	-o "$BUILD/tests/gpu_pin" tests/gpu/gpu_pin.c "$BUILD/lib/libl1arena.a" $LIBS; then
	say "FAIL: tests/gpu/gpu_pin.c did not build"
	exit 1
fi
check_pin=""
if pkg-config --exists check 2>/dev/null &&
	make -s BUILD="$BUILD" "$BUILD/tests/check_pin" >/dev/null 2>&1; then
	check_pin="$BUILD/tests/check_pin"
else
	say "note: check_pin not built (Check missing?); running gpu_pin alone"
fi
if [ $mock -eq 1 ]; then
	if ! cc -shared -fPIC -O2 -o "$BUILD/tests/libcudart_mock.so" tests/gpu/mock_cudart.c -lpthread; then
		say "FAIL: mock libcudart did not build"
		exit 1
	fi
	L1ARENA_CUDART="$ROOT/$BUILD/tests/libcudart_mock.so"
	export L1ARENA_CUDART
	say "dry run with the mock libcudart $L1ARENA_CUDART"
fi
if [ $bench -eq 1 ] && ! make -s -j"$jobs" bins BUILD="$BUILD"; then
	say "note: l1bench did not build; the h2d scenario will not run"
fi

# ---- huge pages, given back on exit -----------------------------------------
if [ $mock -eq 1 ]; then pages_def=$((128 + bench * 640)); elif [ $bench -eq 1 ]; then pages_def=8704
else pages_def=1536; fi
pages=${L1_GPU_HUGEPAGES:-$pages_def}
added=""; mnt=""; shmdir=""; dir=""; shm_flag=""

# by difference: other programs may change nr_hugepages meanwhile
. "$ROOT/tools/hugepages.sh"
give_back() {
	[ -n "$added" ] && hp_change "-$added" >/dev/null
	added=""
}

cleanup() {
	if [ -n "$mnt" ]; then
		rm -f "$mnt"/* 2>/dev/null      # a private mount: all in it is ours
		umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
		rmdir "$mnt" 2>/dev/null
	fi
	give_back
	[ -n "$shmdir" ] && rm -rf "$shmdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/vm/nr_hugepages ]; then
	added=$(hp_change "$pages")
	got=$(hp_avail)             # free and not reserved by another program
	[ "$got" -gt "$pages" ] && got=$pages
	mnt=$(mktemp -d /tmp/l1gpu-hugetlbfs.XXXXXX)
	# min_size= holds them for this run, size= keeps it to them
	if [ "$got" -ge $((pages * 9 / 10)) ] &&
		mount -t hugetlbfs -o "pagesize=2M,mode=1777,size=$((got * 2))M,min_size=$((got * 2))M" \
			none "$mnt" 2>/dev/null; then
		dir=$mnt
		say "hugetlbfs at $mnt, $got of $pages huge pages reserved"
	else
		say "could reserve only $got of $pages huge pages (or mount failed); pools go to /dev/shm"
		rmdir "$mnt"; mnt=""
		give_back
	fi
else
	say "not root or no /proc/sys/vm/nr_hugepages; pools go to /dev/shm"
fi
if [ -z "$dir" ]; then
	shmdir=$(mktemp -d /dev/shm/l1gpu.XXXXXX)
	dir=$shmdir
	shm_flag=--allow-shm
fi

# ---- run ----------------------------------------------------------------------
pass=0; fail=0; skip=0; failed=""
run_one() { # name, timeout, command...
	name=$1; lim=$2; shift 2
	say "=== $name"
	timeout -k 10 "$lim" "$@"
	rc=$?
	case $rc in
	0) pass=$((pass + 1)) ;;
	77) skip=$((skip + 1)); say "$name skipped" ;;
	124|137) fail=$((fail + 1)); failed="$failed $name(timeout)" ;;
	*) fail=$((fail + 1)); failed="$failed $name" ;;
	esac
}

small=""; [ $mock -eq 1 ] && small=--small
run_one gpu_pin 240 "$BUILD/tests/gpu_pin" --dir "$dir" $shm_flag $small all
if [ -n "$check_pin" ]; then
	on_huge=0; [ -n "$mnt" ] && on_huge=1
	run_one check_pin 120 env L1_TEST_DIR="$dir" L1_TEST_HUGETLBFS=$on_huge \
		BUILD="$BUILD" "$check_pin"
fi
if [ $bench -eq 1 ] && [ -x "$BUILD/bin/l1bench" ]; then
	q=""; [ $mock -eq 1 ] && q=--quick
	run_one "l1bench h2d" 300 "$BUILD/bin/l1bench" $q --dir "$dir" $shm_flag h2d
fi

say "$pass passed, $fail failed, $skip skipped${failed:+ (failed:$failed)}"
[ "$fail" -eq 0 ] || exit 1
[ "$pass" -gt 0 ] || exit 77
exit 0
