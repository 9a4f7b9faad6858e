#!/bin/sh
# test_fuse.sh - the l1fs view as an administrator sees it from a shell:
# `ls -l`, `stat`, `cat`, `getfattr -d`, `rm`, `df`, `promtool check metrics`,
# and a user without permission (nobody, through setpriv) refused by the
# objects' modes; options given loosely (an empty or second pool path,
# read_ahead_kb=-1, max_threads=0) refused.  Objects are made by another process (check_fuse --helper),
# so they appear in a mounted view; the pool goes where tests/run.sh says
# (L1_TEST_DIR: its hugetlbfs mount, else /dev/shm).  The mount and the pool
# are removed on every exit path.  Exit status: 0 if every check passed.
set -u
BUILD=${BUILD:-build}
H="$BUILD/tests/check_fuse --helper"
L1FS="$BUILD/bin/l1fs"
dir=${L1_TEST_DIR:-${L1_TEST_SHM_DIR:-/dev/shm/l1test-$(id -u)}}
pool="$dir/shfuse-$$"
mnt=""
tmp=""
fail=0

say() { printf '%s\n' "$*"; }
skip() { say "test_fuse.sh: SKIPPED: $*"; exit 0; }
check() { # description, command...
	d=$1; shift
	if "$@"; then say "ok   $d"; else say "FAIL $d"; fail=1; fi
}

[ -r /dev/fuse ] && [ -w /dev/fuse ] || skip "/dev/fuse is missing or not read-write for $(id -un)"
command -v fusermount3 >/dev/null || skip "fusermount3 missing (Debian package fuse3)"
[ -x "$L1FS" ] || { say "FAIL $L1FS is not built (make bins)"; exit 1; }
[ -x "$BUILD/tests/check_fuse" ] || { say "FAIL $BUILD/tests/check_fuse is not built"; exit 1; }

cleanup() {
	if [ -n "$mnt" ]; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
		rmdir "$mnt" 2>/dev/null
	fi
	$H destroy "$pool" 2>/dev/null
	[ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$dir"
tmp=$(mktemp -d /tmp/l1fs-sh-tmp.XXXXXX)
mnt=$(mktemp -d /tmp/l1fs-sh.XXXXXX)
chmod 755 "$mnt"
$H create "$pool" 64 || { say "FAIL cannot create a pool in $dir"; exit 1; }
A=$($H put "$pool" shell/a 100000 1 644)        # data 100000, block 102400
B=$($H put "$pool" b 4096 2 600)
C=$($H put "$pool" - 8192 3 644)

# without -f, l1fs returns once the view is mounted; allow_other (for the
# nobody checks) needs root, or user_allow_other in /etc/fuse.conf
opts=gc_interval=0.5
[ "$(id -u)" -eq 0 ] && opts=allow_other,$opts
check "l1fs mounts" "$L1FS" "$mnt" --arena "$pool" -o $opts
check "it is a fuse.l1fs mount" grep -q " $mnt fuse.l1fs " /proc/mounts

# listing and attributes
ls -l "$mnt/objects" >"$tmp/ls" 2>&1
check "ls -l objects/ lists 3 objects" test "$(grep -c '^-' "$tmp/ls")" -eq 3
check "ls -l shows A read-only, 100000 bytes (its data size), owned by root" \
	grep -Eq "^-r--r--r-- 1 root root +100000 .* $A\$" "$tmp/ls"
check "ls -l shows B as mode 0400" grep -Eq "^-r-------- 1 root root +4096 .* $B\$" "$tmp/ls"
check "stat: size, owner, mode" test "$(stat -c '%s %U %a %F' "$mnt/objects/$A")" = \
	"100000 root 444 regular file"
check "stat: blocks count the whole block (102400 bytes)" \
	test "$(stat -c '%b %B' "$mnt/objects/$A")" = "200 512"
ls -l "$mnt/keys" >"$tmp/keys" 2>&1
check "ls -l keys/ shows the encoded key as a symlink" \
	grep -q "shell%2Fa -> ../objects/$A\$" "$tmp/keys"
check "readlink keys/b" test "$(readlink "$mnt/keys/b")" = "../objects/$B"

# bytes: the view gives what the writer wrote
cat "$mnt/objects/$A" >"$tmp/a.view"
$H dump "$pool" "$A" >"$tmp/a.lib"
check "cat objects/A = the writer's bytes" cmp -s "$tmp/a.view" "$tmp/a.lib"
cat "$mnt/keys/shell%2Fa" >"$tmp/a.key"
check "cat keys/KEY = the same bytes" cmp -s "$tmp/a.key" "$tmp/a.lib"
check "dd with an offset" sh -c "dd if='$mnt/objects/$A' bs=4096 skip=3 count=2 status=none |
	cmp -s -i 0:12288 -n 8192 - '$tmp/a.lib'"

# what l1ctl put stores, the view and l1ctl get give back byte for byte,
# whatever its size against the block (5 bytes, 5 000 000 bytes)
L1CTL="$BUILD/bin/l1ctl"
head -c 5 /dev/urandom >"$tmp/five"
head -c 5000000 /dev/urandom >"$tmp/big"
for f in five big; do
	"$L1CTL" put --path "$pool" --file "$tmp/$f" --key "put-$f" --publish >/dev/null 2>&1
	check "l1ctl put $f: keys/put-$f has st_size $(wc -c <"$tmp/$f")" \
		test "$(stat -L -c %s "$mnt/keys/put-$f")" = "$(wc -c <"$tmp/$f" | tr -d ' ')"
	check "l1ctl put $f: cmp keys/put-$f with the source" cmp -s "$mnt/keys/put-$f" "$tmp/$f"
	check "l1ctl put $f: sha256sum of keys/put-$f is the source's" test \
		"$(sha256sum <"$mnt/keys/put-$f")" = "$(sha256sum <"$tmp/$f")"
	"$L1CTL" get --path "$pool" --key "put-$f" --out "$tmp/$f.got" 2>/dev/null
	check "l1ctl get $f: the same bytes" cmp -s "$tmp/$f.got" "$tmp/$f"
done
check "meta/ID of the 5-byte object: size 5, phys_size 4096" sh -c \
	"id=\$(readlink '$mnt/keys/put-five'); id=\${id##*/};
	 grep -q '^size: *5\$' '$mnt/meta/'\$id && grep -q '^phys_size: *4096\$' '$mnt/meta/'\$id"
check "metrics: l1arena_data_bytes adds up the data sizes" sh -c \
	"grep -q '^l1arena_data_bytes{pool=[^}]*} 5112293\$' '$mnt/metrics'"
for f in five big; do
	id=$(readlink "$mnt/keys/put-$f"); id=${id##*/}
	"$L1CTL" rm --path "$pool" "$id" >/dev/null || { say "FAIL l1ctl rm $id"; fail=1; }
done

# metadata: meta/ID and extended attributes
cat "$mnt/meta/$A" >"$tmp/meta"
check "meta/A: state" grep -q "^state: *published\$" "$tmp/meta"
check "meta/A: key" grep -q "^key: *shell/a\$" "$tmp/meta"
check "meta/A: layout" grep -q "^layout: *\[100000\]:uint8\$" "$tmp/meta"
if command -v getfattr >/dev/null; then
	getfattr -d --absolute-names "$mnt/objects/$A" >"$tmp/xattr" 2>&1
	for x in "user.l1.id=\"$A\"" 'user.l1.state="published"' 'user.l1.key="shell/a"' \
		'user.l1.layout="\[100000\]:uint8"' 'user.l1.offset="[0-9]*"' \
		'user.l1.owner_pid="[0-9]*"' 'user.l1.ctime="20' 'user.l1.pool="[0-9]*"'; do
		check "getfattr -d: $x" grep -q "^$x" "$tmp/xattr"
	done
else
	say "SKIP getfattr checks: getfattr missing (Debian package attr)"
fi

# generated files
cat "$mnt/stats" >"$tmp/stats"
for f in "^used " "^committed " "^dirty " "^largest free " "^backing " "^growth " "^zeroing " \
	"^clients " "^objects  *0 allocated, 3 published" "^lock  *free; waits give up after 1000 ms" \
	"^given back  *0 failed growth"; do
	check "stats: $f" grep -q "$f" "$tmp/stats"
done
D=$($H put "$pool" later 4096 4 644)
check "stats is fresh on the next read" grep -q "^objects  *0 allocated, 4 published" "$mnt/stats"
cat "$mnt/metrics" >"$tmp/metrics"
check "metrics: l1arena_ prefix everywhere" sh -c "! grep -v -e '^# HELP l1arena_' -e '^# TYPE l1arena_' -e '^l1arena_' '$tmp/metrics'"
if command -v promtool >/dev/null; then
	check "promtool check metrics" sh -c "promtool check metrics <'$tmp/metrics'"
else
	say "SKIP promtool check metrics: promtool missing (Debian package prometheus)"
fi
check "clients lists the view itself" grep -q "^PID" "$mnt/clients"
check "df shows the pool as the source" sh -c "df '$mnt' | grep -q '^l1arena:$pool '"

# appears and vanishes
check "an object published elsewhere appears" sh -c "ls '$mnt/objects' | grep -qx '$D'"
$H free "$pool" "$D"
check "a freed object vanishes from the listing" sh -c "! ls '$mnt/objects' | grep -qx '$D'"
gone=no
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
	stat "$mnt/objects/$D" >/dev/null 2>&1 || { gone=yes; break; }
	sleep 0.2
done
check "... and from stat" test $gone = yes

# a user without permission
if command -v setpriv >/dev/null && id nobody >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
	nob="setpriv --reuid=nobody --regid=nogroup --clear-groups"
	check "nobody cannot read a 0600 object" sh -c "! $nob cat '$mnt/objects/$B' >/dev/null 2>&1"
	check "nobody can read a 0644 object" sh -c "$nob cat '$mnt/objects/$A' | cmp -s - '$tmp/a.lib'"
	check "nobody cannot rm it" sh -c "! $nob rm -f '$mnt/objects/$A' 2>/dev/null"
	check "nobody can list" sh -c "$nob ls '$mnt/objects' | grep -qx '$A'"
	check "nobody can read stats" sh -c "$nob cat '$mnt/stats' >/dev/null"
	check "nobody cannot read meta/ of a 0600 object" \
		sh -c "! $nob cat '$mnt/meta/$B' >/dev/null 2>&1"
	check "... it is Permission denied" sh -c \
		"$nob cat '$mnt/meta/$B' 2>&1 | grep -q 'Permission denied'"
	check "nobody can read meta/ of a 0644 object" \
		sh -c "$nob cat '$mnt/meta/$A' | grep -q '^key: *shell/a\$'"
	if command -v getfattr >/dev/null; then
		check "nobody cannot read the xattrs of a 0600 object" \
			sh -c "! $nob getfattr -n user.l1.key '$mnt/objects/$B' >/dev/null 2>&1"
	fi
else
	say "SKIP nobody checks: needs root, setpriv and a nobody user"
fi

# writes and rm
check "a published object refuses writes" sh -c "! echo x 2>/dev/null >'$mnt/objects/$A'"
check "echo into a published object says read-only" sh -c \
	"echo x 2>&1 >'$mnt/objects/$A' | grep -q 'Read-only file system'"
check "the object is unchanged" cmp -s "$mnt/objects/$A" "$tmp/a.lib"
check "rm objects/C" rm "$mnt/objects/$C"
check "C is freed" sh -c "$H state '$pool' '$C' | grep -Eqx 'gone|dirty'"
check "rm keys/b frees B" rm "$mnt/keys/b"
check "B is freed" sh -c "$H state '$pool' '$B' | grep -Eqx 'gone|dirty'"
check "rm of a missing object fails" sh -c "! rm '$mnt/objects/$C' 2>/dev/null"
check "touch cannot create" sh -c "! touch '$mnt/objects/new' 2>/dev/null"
check "A is still there" sh -c "$H state '$pool' '$A' | grep -qx published"

# unmount
check "fusermount3 -u" fusermount3 -u "$mnt"
check "unmounted" sh -c "! grep -q ' $mnt fuse.l1fs ' /proc/mounts"
sleep 0.3
check "memcheck clean after the view" $H memcheck "$pool"

# stopping under a reader's mapping: SIGTERM waits for the last file to close
check "l1fs mounts again (POOL MOUNTPOINT order)" "$L1FS" "$pool" "$mnt" -o gc_interval=0.5
mkfifo "$tmp/go"
cat >"$tmp/reader.py" <<'EOF'
import mmap, os, sys
f = open(sys.argv[1], "rb")
m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
f.close()                       # the mapping keeps the view file open
print(os.getpid(), flush=True)
open(sys.argv[2]).read()        # wait until told
open(sys.argv[3], "wb").write(m[:])
m.close()
EOF
/usr/bin/python3 "$tmp/reader.py" "$mnt/objects/$A" "$tmp/go" "$tmp/a.mapped" >"$tmp/reader.pid" &
rpid=$!
for i in $(seq 50); do [ -s "$tmp/reader.pid" ] && break; sleep 0.1; done
readerpid=$(cat "$tmp/reader.pid")
check "clients shows the reader that maps a view file, by its own pid" \
	grep -Eq "^$readerpid +python3 +1\$" "$mnt/clients"
check "metrics: l1arena_view_reader_holds with the reader's pid" \
	grep -q "^l1arena_view_reader_holds{pool=\"$pool\",pid=\"$readerpid\",comm=\"python3\"} 1\$" "$mnt/metrics"
check "rm of an object a reader maps" rm "$mnt/objects/$A"
check "metrics: its bytes count as freed but held" \
	grep -q "^l1arena_freed_held_bytes{pool=\"$pool\"} 102400\$" "$mnt/metrics"
check "stats: freed, held" grep -q "^freed, held  *100.00 KiB in 1 objects" "$mnt/stats"
fspid=$(awk '$3 == "l1fs" {print $1; exit}' "$mnt/clients")
check "clients names l1fs's own slot (uid, command)" test -n "$fspid"
[ -n "$fspid" ] && kill -TERM "$fspid"
sleep 1
check "after SIGTERM with a file mapped, l1fs stays up" kill -0 "$fspid"
check "... the view stays mounted" grep -q " $mnt fuse.l1fs " /proc/mounts
check "... and stats says it will stop" grep -q "asked to stop" "$mnt/stats"
echo go >"$tmp/go"
wait "$rpid"
check "the reader reads its mapping after the SIGTERM (exit 0, no SIGBUS)" test $? -eq 0
check "... the bytes it read are the object's" cmp -s "$tmp/a.mapped" "$tmp/a.lib"
gone=no
for i in $(seq 50); do
	grep -q " $mnt fuse.l1fs " /proc/mounts || { gone=yes; break; }
	sleep 0.1
done
check "once the reader is gone, l1fs stops and unmounts" test $gone = yes

# a dead mount (l1fs killed): a restart says what to run
check "l1fs mounts once more" "$L1FS" "$mnt" --arena "$pool" -o gc_interval=0
fspid=$(awk '$3 == "l1fs" {print $1; exit}' "$mnt/clients")
kill -KILL "$fspid"
sleep 0.3
"$L1FS" "$mnt" --arena "$pool" >"$tmp/dead" 2>&1
check "l1fs on a dead mount fails" test $? -ne 0
check "... and says to run fusermount3 -u" grep -q "dead mount.*run .fusermount3 -u $mnt" "$tmp/dead"
check "fusermount3 -u clears the dead mount" fusermount3 -u "$mnt"
check "a restart then works" "$L1FS" "$mnt" --arena "$pool" -o gc_interval=0
check "fusermount3 -u" fusermount3 -u "$mnt"
rmdir "$mnt" && mnt=""

# options fuse_opt alone would read loosely: refused with a sentence,
# nothing mounted
mnt=$(mktemp -d /tmp/l1fs-sh-opt.XXXXXX)
refused() { # description, regex, l1fs arguments...
	d=$1 re=$2
	shift 2
	out=$("$L1FS" "$mnt" "$@" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] && printf '%s\n' "$out" | grep -Eq -- "$re" &&
		! grep -q " $mnt fuse.l1fs " /proc/mounts; then
		say "ok   $d"
	else
		say "FAIL $d: exit $rc: $out"
		fail=1
		fusermount3 -u "$mnt" 2>/dev/null
	fi
}
refused "l1fs -o arena= after --arena P" "pool path .* is empty" --arena "$pool" -o arena=
refused "l1fs --arena ''" "pool path .* is empty" --arena ""
refused "l1fs with two pool paths" "two pool paths" --arena "$pool" -o arena=/nonexistent
refused "l1fs -o read_ahead_kb=-1" "read_ahead_kb takes KiB from 0" --arena "$pool" \
	-o read_ahead_kb=-1
refused "l1fs -o read_ahead_kb=4M" "read_ahead_kb takes KiB from 0" --arena "$pool" \
	-o read_ahead_kb=4M
refused "l1fs -o max_threads=0" "max_threads takes 1 to" --arena "$pool" -o max_threads=0
refused "l1fs -o max_threads=-3" "max_threads takes 1 to" --arena "$pool" -o max_threads=-3
rmdir "$mnt" && mnt=""
# a pool file truncated under the view: l1fs answers EIO, says why in its
# log and in stats, and keeps running until it is unmounted
mnt=$(mktemp -d /tmp/l1fs-sh.XXXXXX)
E=$($H put "$pool" cut 4096 5 644)
"$L1FS" -f "$mnt" --arena "$pool" -o gc_interval=0.2 2>"$tmp/l1fs.log" &
fspid=$!
for i in $(seq 50); do grep -q " $mnt fuse.l1fs " /proc/mounts && break; sleep 0.1; done
check "a second view mounts (foreground)" grep -q " $mnt fuse.l1fs " /proc/mounts
truncate -s 0 "$pool"
sleep 0.5                       # a gc pass or two find it too
check "reading an object of the truncated pool is EIO" sh -c \
	"cat '$mnt/objects/$E' 2>&1 >/dev/null | grep -q 'Input/output error'"
check "meta/ of it is EIO" sh -c "! cat '$mnt/meta/$E' >/dev/null 2>&1"
check "ls objects/ is EIO" sh -c "ls '$mnt/objects' 2>&1 | grep -q 'Input/output error'"
check "stats says the pool is damaged" grep -q "^state *DAMAGED: the pool file is 0 bytes" \
	"$mnt/stats"
check "the log says why" grep -q "is 0 bytes but its header says" "$tmp/l1fs.log"
check "l1fs is still running" kill -0 $fspid
check "it unmounts" fusermount3 -u "$mnt"
wait $fspid
check "and exits cleanly (status 0, no SIGBUS)" test $? -eq 0
rmdir "$mnt" && mnt=""
check "attach refuses the truncated file with a sentence" sh -c \
	"$BUILD/bin/l1ctl info --path '$pool' 2>&1 | grep -q 'is 0 bytes: not an l1arena pool'"

[ $fail -eq 0 ] && say "test_fuse.sh: all passed"
exit $fail
