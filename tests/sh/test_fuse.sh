#!/bin/sh
# test_fuse.sh - the l1fs view as an administrator sees it from a shell:
# `ls -l`, `stat`, `cat`, `getfattr -d`, `rm`, `df`, metrics_lint.py (and
# `promtool check metrics` where it is installed),
# and a user without permission (nobody, through setpriv) refused by the
# objects' modes.  Objects are made by another process (check_fuse --helper),
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
A=$($H put "$pool" shell/a 100000 1 644)
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
check "ls -l shows A read-only, 102400 bytes, owned by root" \
	grep -Eq "^-r--r--r-- 1 root root +102400 .* $A\$" "$tmp/ls"
check "ls -l shows B as mode 0400" grep -Eq "^-r-------- 1 root root +4096 .* $B\$" "$tmp/ls"
check "stat: size, owner, mode" test "$(stat -c '%s %U %a %F' "$mnt/objects/$A")" = \
	"102400 root 444 regular file"
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
	"^clients " "^objects  *0 allocated, 3 published"; do
	check "stats: $f" grep -q "$f" "$tmp/stats"
done
D=$($H put "$pool" later 4096 4 644)
check "stats is fresh on the next read" grep -q "^objects  *0 allocated, 4 published" "$mnt/stats"
cat "$mnt/metrics" >"$tmp/metrics"
check "metrics: l1arena_ prefix everywhere" sh -c "! grep -v -e '^# HELP l1arena_' -e '^# TYPE l1arena_' -e '^l1arena_' '$tmp/metrics'"
# promtool's parser and lint rules, without a Prometheus server installed
check "metrics pass metrics_lint.py (promtool check metrics' rules)" \
	"$(command -v /usr/bin/python3 || echo python3)" "$(dirname "$0")/metrics_lint.py" "$tmp/metrics"
if command -v promtool >/dev/null; then
	check "promtool check metrics" sh -c "promtool check metrics <'$tmp/metrics'"
fi
check "clients lists the view itself" grep -q "^PID" "$mnt/clients"
check "df shows the pool" sh -c "df '$mnt' | grep -q '^l1arena'"

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
rmdir "$mnt" && mnt=""

[ $fail -eq 0 ] && say "test_fuse.sh: all passed"
exit $fail
