#!/bin/sh
# neighbour.sh - a competing user of huge pages, as a database, DPDK or
# another pool is on a shared server: until it gets SIGTERM or SIGINT (or for
# L1_NEIGHBOUR_SECONDS), round after round it adds a few hundred huge pages
# to the kernel's pool (by difference), mounts a hugetlbfs of its own that
# reserves them (min_size=), holds half of them in a file, lets go of it all
# after a moment and gives the pages back (by difference, since others
# change the count meanwhile).  tests/run.sh runs it in the background for
# the whole suite (L1_TEST_NEIGHBOUR=1), which must pass regardless.
# Root only.  Prints one line per round and a closing line
#   neighbour: done: R rounds, up to M huge pages held, ...
# and FAIL lines for anything it could not give back.
set -u
. "$(dirname "$0")/../../tools/hugepages.sh"
secs=${L1_NEIGHBOUR_SECONDS:-0}
lo=${L1_NEIGHBOUR_MIN:-100}
hi=${L1_NEIGHBOUR_MAX:-300}
if [ "$(id -u)" -ne 0 ] || [ ! -w "$HP_KNOB" ]; then
	echo "neighbour: needs root to reserve huge pages"
	exit 1
fi
mnt=$(mktemp -d /tmp/l1neighbour.XXXXXX)
added=0 rounds=0 most=0 stop=0 bad=0

release() {
	if mountpoint -q "$mnt" 2>/dev/null; then
		rm -f "$mnt/held"
		umount "$mnt" || { echo "FAIL neighbour: cannot unmount $mnt"; bad=1; }
	fi
	if [ "$added" -gt 0 ]; then
		back=$(hp_change "-$added")
		[ "$back" -eq "-$added" ] ||
			{ echo "FAIL neighbour: gave back $((-back)) of the $added huge pages it added"; bad=1; }
		added=0
	fi
}
trap 'stop=1' TERM INT

t0=$(date +%s)
seed=$$
while [ $stop -eq 0 ]; do
	[ "$secs" -gt 0 ] && [ $(($(date +%s) - t0)) -ge "$secs" ] && break
	seed=$(((seed * 1103515245 + 12345) % 2147483648))
	k=$((lo + seed % (hi - lo + 1)))
	# add k pages and reserve them with a min_size= mount, as one step
	set -- $(hp_locked hp_take_now "$k" "$mnt")
	added=$1
	if [ "$2" -gt 0 ]; then
		k=$2
		held=$((k / 2))
		if fallocate -l $((held * 2))M "$mnt/held" 2>/dev/null; then
			echo "neighbour: round $((rounds + 1)): $k huge pages reserved, $held of them in use"
			[ $k -gt $most ] && most=$k
		else
			echo "neighbour: round $((rounds + 1)): $k huge pages reserved, none in use (fallocate failed)"
		fi
	else
		echo "neighbour: round $((rounds + 1)): could not reserve $k huge pages (the kernel gave $added)"
	fi
	rounds=$((rounds + 1))
	i=0
	while [ $i -lt 20 ] && [ $stop -eq 0 ]; do sleep 0.1; i=$((i + 1)); done
	release
	i=0
	while [ $i -lt 10 ] && [ $stop -eq 0 ]; do sleep 0.1; i=$((i + 1)); done
done
release
rmdir "$mnt"
[ $bad -eq 0 ] || exit 1
echo "neighbour: done: $rounds rounds, up to $most huge pages reserved at once, all given back"
