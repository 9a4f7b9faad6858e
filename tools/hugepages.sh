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

# hp_change DELTA: adds DELTA (negative: gives back) to nr_hugepages;
# prints the change the kernel made (fewer when memory is short, or when
# pages to give back are in use).  Root only.
hp_change() {
	if command -v flock >/dev/null && { : >>"$HP_LOCK"; } 2>/dev/null; then
		(
			flock -w 30 9 || echo "hugepages: no lock on $HP_LOCK after 30 s; going on" >&2
			hp_change_now "$1"
		) 9>>"$HP_LOCK"
	else
		hp_change_now "$1"
	fi
}

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
