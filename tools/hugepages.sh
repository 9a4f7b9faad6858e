# hugepages.sh - sourced by l1arena's scripts (tools/run-main.sh,
# tests/run.sh, tests/sh/neighbour.sh, tests/sh/test_make_run.sh,
# tests/gpu/run.sh): changes the kernel's count of 2 MiB huge pages by a
# difference, never to an absolute value, since other programs change it
# too.  The read and the write happen under an exclusive flock on
# $L1_HUGEPAGES_LOCK (default /run/lock/l1arena-nr_hugepages), which
# l1_setup_hugepages (arena/backing.c) takes as well, so two l1arena
# programs never lose each other's change; programs that know nothing of
# the lock can still race, as they can with each other.

HP_KNOB=/proc/sys/vm/nr_hugepages
HP_LOCK=${L1_HUGEPAGES_LOCK:-/run/lock/l1arena-nr_hugepages}

# hp_locked COMMAND...: runs it (in a subshell) holding the lock, so that
# what it does with the count and the free pages is not mixed up with what
# another l1arena program does (add pages, then reserve them with a
# min_size= mount, say).  Without flock or the lock file, runs it anyway.
hp_locked() {
	if command -v flock >/dev/null && { : >>"$HP_LOCK"; } 2>/dev/null; then
		(
			flock -w 30 9 || echo "hugepages: no lock on $HP_LOCK after 30 s; going on" >&2
			"$@"
		) 9>>"$HP_LOCK"
	else
		"$@"
	fi
}

# hp_change DELTA: adds DELTA (negative: gives back) to nr_hugepages, under
# the lock; prints the change the kernel made (fewer when memory is short,
# or when pages to give back are in use).  Root only.
hp_change() { hp_locked hp_change_now "$1"; }

# hp_change_now DELTA: the same, for a caller that holds the lock already
hp_change_now() {
	hp_b=$(cat $HP_KNOB)
	hp_w=$((hp_b + $1))
	[ "$hp_w" -lt 0 ] && hp_w=0
	echo "$hp_w" >$HP_KNOB 2>/dev/null
	echo $(($(cat $HP_KNOB) - hp_b))
}

# hp_avail: huge pages free and not reserved (free_hugepages counts pages
# another program has reserved as free)
hp_avail() {
	awk '/HugePages_Free/ {f=$2} /HugePages_Rsvd/ {r=$2} END {print (f > r ? f - r : 0)}' /proc/meminfo
}

# hp_take_now N DIR [MODE]: adds N pages and mounts at DIR a hugetlbfs that
# reserves (min_size=) and may use (size=) as many of them as are free and
# not reserved, at most N; prints "ADDED GOT" (GOT 0: nothing mounted).
# Call it through hp_locked, so that nobody takes the pages in between.
hp_take_now() {
	hp_a=$(hp_change_now "$1")
	hp_g=$(hp_avail)
	[ "$hp_g" -gt "$1" ] && hp_g=$1
	if [ "$hp_g" -gt 0 ] && mount -t hugetlbfs \
		-o "pagesize=2M,mode=${3:-0755},size=$((hp_g * 2))M,min_size=$((hp_g * 2))M" none "$2" 2>/dev/null; then
		echo "$hp_a $hp_g"
	else
		echo "$hp_a 0"
	fi
}
