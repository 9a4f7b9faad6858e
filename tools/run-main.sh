#!/bin/sh
# run-main.sh - the main job of `make run`, end to end, on a default pool:
#   1. reserve huge pages and mount hugetlbfs at /dev/hugepages (l1ctl setup; root)
#   2. create the default pool (lazy), or reuse the one that is there
#   3. mount the l1fs view of it
#   4. run the KV-cache workload (kvdemo): writers, readers, an evictor at the
#      0.8 watermark, with a progress line every second
#   5. show `ls -l` of a few objects and `cat stats` from the view
#   6. keep the view mounted (the default; the last line says how to stop),
#      or, with L1_RUN_CLEANUP=1, undo all of it
# `sh tools/run-main.sh stop` undoes what an earlier run set up and left: it
# unmounts the view, destroys the pool if a run created it, unmounts the
# hugetlbfs if a run mounted it, and gives back the huge pages a run reserved.
# What a run set up is written to $L1_RUN_STATE/state as it goes, so stop
# knows (and a failed run can be stopped too).
#
# Environment (all optional):
#   L1ARENA_PATH      the pool (default /dev/hugepages/l1arena)
#   L1_RUN_MOUNT      the view's mount point (default /run/l1arena/view)
#   L1_RUN_STATE      where the state file goes (default /run/l1arena)
#   L1_RUN_SIZE       pool size: 512M, 2G (default 1G, less on a small machine)
#   L1_RUN_SECONDS    how long the workload runs (default 20)
#   L1_RUN_SHORT=1    a brief run for CI: 5 s on a 512M pool
#   L1_RUN_CLEANUP=1  at the end unmount, destroy the pool, give back huge pages
#   L1_RUN_FORCE=1    recreate a pool that is already there (l1ctl create --force)
#   BUILD             the build directory (default build)
# Without root: says which step needs root and goes on with a pool in
# /dev/shm (no huge pages) and, where FUSE lets a user mount, the view.
# Exit status: the workload's (0: every byte read back was right), or 1 when
# a step could not be done.
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
case $BUILD in /*) BIN=$BUILD/bin ;; *) BIN=$ROOT/$BUILD/bin ;; esac
L1CTL=$BIN/l1ctl
L1FS=$BIN/l1fs
KVDEMO=$BIN/kvdemo
UID_NOW=$(id -u)
KNOB=/proc/sys/vm/nr_hugepages
FREE_KNOB=/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages
if [ "$UID_NOW" -eq 0 ]; then
	STATE=${L1_RUN_STATE:-/run/l1arena}
	MNT=${L1_RUN_MOUNT:-$STATE/view}
else
	STATE=${L1_RUN_STATE:-${XDG_RUNTIME_DIR:-/tmp}/l1arena-$UID_NOW}
	MNT=${L1_RUN_MOUNT:-$STATE/view}
fi
CLEANUP=${L1_RUN_CLEANUP:-0}

say() { echo "run: $*"; }
warn() { echo "run: $*" >&2; }

# ---- state: what this and earlier runs set up ----------------------------

# Keys: pool pool_created mount view_mounted hugetlbfs_mounted pages_added
pool="" pool_created=0 mount="" view_mounted=0 hugetlbfs_mounted="" pages_added=0

load_state() {
	[ -f "$STATE/state" ] || return 1
	# shellcheck disable=SC1091
	. "$STATE/state"
}

save_state() {
	mkdir -p "$STATE" || return 1
	cat >"$STATE/state.tmp" <<EOF
pool='$pool'
pool_created=$pool_created
mount='$mount'
view_mounted=$view_mounted
hugetlbfs_mounted='$hugetlbfs_mounted'
pages_added=$pages_added
EOF
	mv "$STATE/state.tmp" "$STATE/state"
}

is_hugetlbfs() { [ "$(stat -f -c %T "$1" 2>/dev/null)" = hugetlbfs ]; }

# MiB from 512M, 2G, 1T or a byte count; empty on anything else.
to_mib() {
	v=$1
	case $v in
	*[GgMmTt]) n=${v%?} ;;
	*) n=$v ;;
	esac
	case $n in '' | *[!0-9]*) return 1 ;; esac
	case $v in
	*[Tt]) echo $((n * 1048576)) ;;
	*[Gg]) echo $((n * 1024)) ;;
	*[Mm]) echo "$n" ;;
	*) echo $((n / 1048576)) ;;
	esac
}

# ---- stop ----------------------------------------------------------------

unmount_view() {
	[ -n "$mount" ] && mountpoint -q "$mount" 2>/dev/null || return 0
	fusermount3 -u "$mount" 2>/dev/null || umount "$mount" 2>/dev/null ||
		umount -l "$mount" || {
		warn "cannot unmount the view at $mount: close what uses it, then run: sh tools/run-main.sh stop"
		return 1
	}
	say "unmounted the view at $mount"
}

destroy_pool() {
	[ "$pool_created" = 1 ] && [ -e "$pool" ] || return 0
	# l1fs detaches a moment after the unmount; a live client makes destroy
	# refuse (EBUSY), so give it a few seconds before forcing
	i=0
	while [ $i -lt 50 ]; do
		"$L1CTL" destroy --path "$pool" >/dev/null 2>&1 && break
		sleep 0.1
		i=$((i + 1))
	done
	if [ -e "$pool" ] && ! "$L1CTL" destroy --path "$pool" --force >/dev/null; then
		warn "cannot destroy the pool $pool (see above)"
		return 1
	fi
	say "destroyed the pool $pool"
}

release_hugetlbfs() {
	[ -n "$hugetlbfs_mounted" ] && is_hugetlbfs "$hugetlbfs_mounted" || return 0
	if [ -n "$(ls -A "$hugetlbfs_mounted" 2>/dev/null)" ]; then
		say "left hugetlbfs mounted at $hugetlbfs_mounted: it holds other files"
		return 0
	fi
	umount "$hugetlbfs_mounted" && say "unmounted hugetlbfs at $hugetlbfs_mounted"
}

give_back_pages() {
	[ "$pages_added" -gt 0 ] 2>/dev/null || return 0
	cur=$(cat "$KNOB")
	want=$((cur - pages_added))
	[ "$want" -lt 0 ] && want=0
	if echo "$want" >"$KNOB" 2>/dev/null; then
		say "gave back $pages_added huge pages (nr_hugepages $cur -> $(cat "$KNOB"))"
	else
		warn "cannot lower $KNOB to $want: run as root: echo $want > $KNOB"
		return 1
	fi
}

stop() {
	if ! load_state; then
		say "nothing to stop: no run state in $STATE"
		return 0
	fi
	ok=0
	unmount_view || ok=1
	[ -n "$mount" ] && rmdir "$mount" 2>/dev/null
	destroy_pool || ok=1
	[ "$pool_created" = 1 ] || [ -z "$pool" ] ||
		say "kept the pool $pool: it was there before make run (l1ctl destroy --path $pool removes it)"
	release_hugetlbfs || ok=1
	give_back_pages || ok=1
	if [ $ok -eq 0 ]; then
		rm -f "$STATE/state"
		rmdir "$STATE" 2>/dev/null
		say "stopped: nothing of make run is left"
	fi
	return $ok
}

# ---- start ---------------------------------------------------------------

check_bins() {
	for b in "$L1CTL" "$KVDEMO"; do
		if [ ! -x "$b" ]; then
			warn "$b is missing: build it first with \`make\` (BUILD=$BUILD)"
			exit 1
		fi
	done
}

choose_size() {
	if [ -n "${L1_RUN_SIZE:-}" ]; then
		SIZE_MIB=$(to_mib "$L1_RUN_SIZE") || {
			warn "L1_RUN_SIZE='$L1_RUN_SIZE' is not a size: give it as 512M or 2G"
			exit 1
		}
	elif [ "${L1_RUN_SHORT:-0}" = 1 ]; then
		SIZE_MIB=512
	else
		# 1 GiB, or a quarter of the RAM on a machine with less than 4 GiB
		mem=$(awk '/^MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
		SIZE_MIB=1024
		[ "$mem" -lt 4096 ] && SIZE_MIB=$((mem / 4 / 64 * 64))
	fi
	if [ "$SIZE_MIB" -lt 256 ]; then
		warn "a pool of ${SIZE_MIB} MiB is too small for the workload: give L1_RUN_SIZE=256M or more"
		exit 1
	fi
	# the whole pool on 2 MiB pages, plus its metadata (about 0.6%)
	PAGES=$(((SIZE_MIB * 101 / 100 + 1) / 2 + 4))
}

# Step 1: huge pages and the hugetlbfs mount.  Sets ALLOW_SHM and may move
# the pool to /dev/shm when it cannot be done.
setup_hugepages() {
	ALLOW_SHM=""
	dir=$(dirname "$POOL")
	if ! is_hugetlbfs "$dir" && [ "$dir" != /dev/hugepages ]; then
		say "step 1: $dir is not a hugetlbfs: the pool goes there without huge pages"
		ALLOW_SHM=--allow-shm
		return 0
	fi
	if [ -e "$POOL" ]; then
		say "step 1: a pool is at $POOL already: no huge pages to reserve for it"
		return 0
	fi
	if [ "$UID_NOW" -ne 0 ]; then
		free=$(cat "$FREE_KNOB" 2>/dev/null || echo 0)
		if is_hugetlbfs "$dir" && [ -w "$dir" ] && [ "$free" -ge "$PAGES" ]; then
			say "step 1: $free huge pages free and $dir writable: no root needed"
			return 0
		fi
		warn "step 1 (reserve $PAGES huge pages of 2 MiB and mount hugetlbfs at $dir) needs root:"
		warn "  run \`sudo make run\`, or have root run \`$L1CTL setup --hugepages $PAGES --mount $dir\` once."
		warn "  Going on without huge pages: the pool goes to /dev/shm."
		POOL=/dev/shm/l1arena-$UID_NOW
		ALLOW_SHM=--allow-shm
		return 0
	fi
	before=$(cat "$KNOB")
	was=""
	is_hugetlbfs "$dir" && was=1
	out=$("$L1CTL" setup --hugepages "$PAGES" --mount "$dir" 2>&1)
	st=$?
	after=$(cat "$KNOB")
	pages_added=$((pages_added + after - before))
	[ -z "$was" ] && is_hugetlbfs "$dir" && hugetlbfs_mounted=$dir
	save_state
	if [ $st -eq 0 ]; then
		say "step 1: $out"
		return 0
	fi
	# memory too fragmented for all of them: a smaller pool on what we got
	free=$(cat "$FREE_KNOB" 2>/dev/null || echo 0)
	warn "step 1: $out"
	if is_hugetlbfs "$dir" && [ "$free" -ge 132 ]; then
		SIZE_MIB=$(((free - 4) * 2 * 100 / 101 / 64 * 64))
		warn "step 1: going on with a ${SIZE_MIB} MiB pool on the $free huge pages free"
		return 0
	fi
	warn "step 1: going on without huge pages: the pool goes to /dev/shm"
	POOL=/dev/shm/l1arena
	ALLOW_SHM=--allow-shm
}

# L1_RUN_FORCE=1: the pool there goes first (our own view of it too), so
# that step 1 reserves pages for the new one and step 2 creates it afresh.
remove_for_force() {
	[ "${L1_RUN_FORCE:-0}" = 1 ] && [ -e "$POOL" ] || return 0
	if [ "$pool" = "$POOL" ] && [ "$view_mounted" = 1 ]; then
		unmount_view || return 1
		view_mounted=0
		save_state
	fi
	i=0
	while [ $i -lt 30 ] && ! "$L1CTL" destroy --path "$POOL" >/dev/null 2>&1; do
		sleep 0.1
		i=$((i + 1))
	done
	if [ -e "$POOL" ] && ! "$L1CTL" destroy --force --path "$POOL" >/dev/null; then
		warn "step 2: L1_RUN_FORCE=1, but the pool at $POOL cannot be removed (see above)"
		return 1
	fi
	say "L1_RUN_FORCE=1: removed the pool at $POOL; step 2 creates it anew"
	pool=$POOL
	pool_created=0
	save_state
}

# Step 2: the pool.
setup_pool() {
	grow=256
	[ "$SIZE_MIB" -lt 512 ] && grow=$((SIZE_MIB / 2 / 64 * 64))
	[ "$grow" -lt 64 ] && grow=64
	if [ -e "$POOL" ]; then
		if ! why=$("$L1CTL" info --path "$POOL" 2>&1 >/dev/null); then
			warn "step 2: the pool at $POOL cannot be used: ${why#l1ctl: }"
			warn "  Rerun with L1_RUN_FORCE=1 to recreate it (its objects are lost), or set L1ARENA_PATH."
			return 1
		fi
		say "step 2: a pool is at $POOL already: reusing it (L1_RUN_FORCE=1 recreates it)"
		pool=$POOL
		save_state
		return 0
	fi
	# shellcheck disable=SC2086
	if ! out=$("$L1CTL" create --path "$POOL" --size "${SIZE_MIB}M" --lazy \
		--init-size "${grow}M" --grow-step "${grow}M" $ALLOW_SHM 2>&1); then
		warn "step 2: $out"
		return 1
	fi
	say "step 2: $out" | head -n 1
	# with --allow-shm, create may have put the pool elsewhere (it says where):
	# every later step opens exactly that path
	real=$(printf '%s\n' "$out" | sed -n 's/^created \(.*\): .* pool on .*/\1/p' | head -n 1)
	[ -n "$real" ] && POOL=$real
	pool=$POOL
	pool_created=1
	save_state
}

# Step 3: the view.  Sets VIEW (empty: none).
setup_view() {
	VIEW=""
	if [ ! -x "$L1FS" ]; then
		warn "step 3: no view: $L1FS is not built; the workload reads by key only"
		return 0
	fi
	if mountpoint -q "$MNT" 2>/dev/null; then
		if grep -q "^pool  *$POOL " "$MNT/stats" 2>/dev/null; then
			say "step 3: the view of $POOL is mounted at $MNT already: reusing it"
			VIEW=$MNT
			return 0
		fi
		warn "step 3: $MNT is mounted, but not as a view of $POOL: unmount it or set L1_RUN_MOUNT; going on without the view"
		return 0
	fi
	if ! mkdir -p "$MNT" 2>/dev/null; then
		warn "step 3: cannot create $MNT: set L1_RUN_MOUNT to a directory you may create; going on without the view"
		return 0
	fi
	if ! out=$("$L1FS" "$MNT" --arena "$POOL" 2>&1) || ! mountpoint -q "$MNT"; then
		warn "step 3: cannot mount the view at $MNT: ${out:-l1fs failed}"
		[ "$UID_NOW" -ne 0 ] &&
			warn "  (as a user, FUSE needs read-write /dev/fuse and fusermount3; as root it works)"
		warn "  Going on without the view: the workload reads by key only."
		rmdir "$MNT" 2>/dev/null
		return 0
	fi
	mount=$MNT
	view_mounted=1
	save_state
	VIEW=$MNT
	say "step 3: mounted the view of $POOL at $MNT"
}

show_results() {
	if [ -n "$VIEW" ]; then
		echo
		echo "\$ ls -l $VIEW/objects | head -n 6"
		ls -l "$VIEW/objects" | head -n 6
		echo "\$ ls -l $VIEW/keys | head -n 4"
		ls -l "$VIEW/keys" | head -n 4
		echo "\$ cat $VIEW/stats"
		cat "$VIEW/stats"
	else
		echo
		echo "\$ l1ctl ls --path $POOL | head -n 6"
		"$L1CTL" ls --path "$POOL" 2>/dev/null | head -n 6
		echo "\$ l1ctl info --path $POOL"
		"$L1CTL" info --path "$POOL"
	fi
}

on_exit() {
	st=$?
	trap - EXIT INT TERM
	if [ "$CLEANUP" = 1 ]; then
		echo
		say "cleaning up (L1_RUN_CLEANUP=1)"
		stop || st=1
	elif [ -f "$STATE/state" ]; then
		if [ "$view_mounted" = 1 ]; then
			say "the view stays mounted at $mount (pool $pool); stop it and give everything back with: sh tools/run-main.sh stop"
		else
			say "the pool $pool stays; remove it and give everything back with: sh tools/run-main.sh stop"
		fi
	fi
	exit $st
}

start() {
	check_bins
	if load_state; then
		say "an earlier make run is still set up (pool $pool${mount:+, view at $mount}): building on it"
	fi
	POOL=${L1ARENA_PATH:-/dev/hugepages/l1arena}
	choose_size
	SECS=${L1_RUN_SECONDS:-20}
	[ "${L1_RUN_SHORT:-0}" = 1 ] && [ -z "${L1_RUN_SECONDS:-}" ] && SECS=5
	trap on_exit EXIT
	trap 'exit 130' INT TERM
	remove_for_force || exit 1
	setup_hugepages
	setup_pool || exit 1
	setup_view
	say "step 4: the KV-cache workload for $SECS s"
	"$KVDEMO" --arena "$POOL" ${VIEW:+--view "$VIEW"} --seconds "$SECS"
	rc=$?
	show_results
	echo
	if [ $rc -eq 0 ]; then
		say "the workload passed"
	else
		warn "the workload FAILED (kvdemo exit status $rc; its last lines say why)"
	fi
	exit $rc
}

case ${1:-start} in
start) start ;;
stop) stop ;;
-h | --help | help)
	sed -n '2,/^set -u/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
	;;
*)
	warn "unknown command '$1': use start (the default), stop or --help"
	exit 2
	;;
esac
