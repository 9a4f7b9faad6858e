#!/bin/sh
# test_l1ctl.sh - every l1ctl subcommand through the real binary, the way an
# operator meets it: --help for each, the normal path (create, info, put,
# ls, get, publish, rm, memcheck, gc, destroy), and the ways it goes wrong:
# bad sizes and options (exit 2), a missing pool, a user without permission
# (nobody, through setpriv), a pool of another format version and a file
# that is not a pool (exit 1, with a sentence that says what to do), and a
# pool whose bitmap was damaged (memcheck exit 3, then --repair).  Pools go
# where tests/run.sh says (L1_TEST_DIR); damaged copies are plain files in
# /dev/shm.  Everything is removed on every exit path.
# Exit status: 0 if every check passed.
set -u
BUILD=${BUILD:-build}
L1CTL=$BUILD/bin/l1ctl
dir=${L1_TEST_DIR:-${L1_TEST_SHM_DIR:-/dev/shm/l1test-$(id -u)}}
shm=""
[ "${L1_TEST_HUGETLBFS:-0}" = 1 ] || shm=--allow-shm
pool=$dir/l1ctl-$$
tmp=""
made_dir=""
fail=0
OUT=""
RC=0

say() { printf '%s\n' "$*"; }

cleanup() {
	"$L1CTL" destroy --force --path "$pool" >/dev/null 2>&1
	[ -n "$tmp" ] && rm -rf "$tmp"
	rm -f "/dev/shm/l1ctl-v9-$$" "/dev/shm/l1ctl-bad-$$" "/dev/shm/l1ctl-shm-$$" \
		"/dev/shm/l1ctl-zero-$$"
	[ -n "$made_dir" ] && rmdir "$dir" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# expect RC REGEX DESCRIPTION -- COMMAND...: runs it (stdout and stderr
# together into $OUT), checks the exit status and that the output matches.
expect() {
	want=$1 re=$2 d=$3
	shift 4
	OUT=$("$@" 2>&1)
	RC=$?
	if [ "$RC" -ne "$want" ]; then
		say "FAIL $d: exit $RC, wanted $want; output:"
		printf '%s\n' "$OUT" | sed 's/^/       /' | head -n 12
		fail=1
	elif [ -n "$re" ] && ! printf '%s\n' "$OUT" | grep -Eq -- "$re"; then
		say "FAIL $d: output does not match /$re/:"
		printf '%s\n' "$OUT" | sed 's/^/       /' | head -n 12
		fail=1
	else
		say "ok   $d"
	fi
}

# has REGEX DESCRIPTION: the output of the last expect also matches.
has() {
	if printf '%s\n' "$OUT" | grep -Eq -- "$1"; then
		say "ok   $2"
	else
		say "FAIL $2: output does not match /$1/"
		fail=1
	fi
}

[ -x "$L1CTL" ] || { say "FAIL $L1CTL is not built (make bins)"; exit 1; }
[ -d "$dir" ] || made_dir=1
mkdir -p "$dir"
tmp=$(mktemp -d /tmp/l1ctl-test.XXXXXX)
chmod 755 "$tmp"

# ---- help and usage --------------------------------------------------------

expect 2 "usage: l1ctl COMMAND" "no command: usage on stderr, exit 2" -- "$L1CTL"
expect 0 "Exit codes: 0 done" "--help lists the commands and exit codes" -- "$L1CTL" --help
expect 2 "unknown command 'frobnicate'" "an unknown command is a usage error" -- \
	"$L1CTL" frobnicate
for c in setup create info stats ls put get rm publish memcheck gc destroy; do
	expect 0 "^usage: l1ctl $c" "$c --help prints its usage" -- "$L1CTL" $c --help
	printf '%s\n' "$OUT" | grep -q "Exit codes" ||
		{ say "FAIL $c --help documents its exit codes"; fail=1; }
done
expect 0 "^usage: l1ctl put" "help put is put --help" -- "$L1CTL" help put
expect 0 "3 problems found" "memcheck --help documents exit 3" -- "$L1CTL" memcheck --help

# ---- create, with bad sizes and options -------------------------------------

expect 2 "needs --size" "create without --size" -- "$L1CTL" create --path "$pool" $shm
expect 2 "not a size|size suffix" "create --size 12Q" -- \
	"$L1CTL" create --path "$pool" --size 12Q $shm
expect 2 "not a size" "create --size -5M" -- "$L1CTL" create --path "$pool" --size -5M $shm
expect 2 "not a size|size suffix" "create --size 1.5X" -- "$L1CTL" create --path "$pool" --size 1.5X $shm
expect 2 "not a whole number" "create --size 0.3" -- \
	"$L1CTL" create --path "$pool" --size 0.3 $shm
expect 2 "needs a value" "create --size with no value" -- "$L1CTL" create --size
expect 2 "takes no option '--frob'" "an unknown option" -- \
	"$L1CTL" create --path "$pool" --size 64M --frob
expect 2 "ls takes no option --size" "an option of another command" -- \
	"$L1CTL" ls --path "$pool" --size 64M
expect 2 "octal file mode" "create --mode 999" -- \
	"$L1CTL" create --path "$pool" --size 64M --mode 999 $shm
test -e "$pool" && { say "FAIL a refused create left $pool behind"; fail=1; }
expect 0 "^created $pool: 64.0 MiB lazy pool" "create --size 64M" -- \
	"$L1CTL" create --path "$pool" --size 64M $shm
expect 1 "add --force to replace it" "create over a pool says to use --force" -- \
	"$L1CTL" create --path "$pool" --size 64M $shm
expect 0 "^created $pool: 32.0 MiB eager pool" "create --force --eager replaces it" -- \
	"$L1CTL" create --path "$pool" --size 32M --eager --force $shm

# ---- info, put, ls, get ----------------------------------------------------

expect 0 "^used +0 B of 32.0 MiB" "info" -- "$L1CTL" info --path "$pool"
expect 0 '"total_bytes":33554432' "info --json" -- "$L1CTL" info --json --path "$pool"
if command -v python3 >/dev/null; then
	printf '%s\n' "$OUT" | python3 -c 'import json,sys; json.load(sys.stdin)' ||
		{ say "FAIL info --json is not JSON"; fail=1; }
fi
expect 0 "^used" "stats is info" -- "$L1CTL" stats --path "$pool"

head -c 100000 /dev/urandom >"$tmp/in"
head -c 3000 "$tmp/in" >"$tmp/small"
expect 0 "^[0-9]+ objects/[0-9]+ keys/shell%2Fkv%20one$" \
	"put --file --key --publish prints id and view paths" -- \
	"$L1CTL" put --path "$pool" --file "$tmp/in" --key "shell/kv one" --publish
id1=${OUT%% *}
expect 0 "^[0-9]+ objects/[0-9]+ keys/k2$" "put from stdin with --layout" -- \
	sh -c "head -c 4096 '$tmp/in' | '$L1CTL' put --path '$pool' --layout '[2,4,256]:fp16' --key k2 --publish"
expect 2 "layout" "put --layout that does not parse" -- \
	"$L1CTL" put --path "$pool" --layout '[2,x]:fp16' --file "$tmp/in"
expect 2 "not both" "put --layout and --bytes" -- \
	"$L1CTL" put --path "$pool" --layout '[4]:fp16' --bytes 4K --file "$tmp/in"
expect 2 "needs --key" "put --publish without --key" -- \
	"$L1CTL" put --path "$pool" --publish --file "$tmp/in"
expect 2 "not a size|size suffix" "put --bytes 4Q" -- \
	"$L1CTL" put --path "$pool" --bytes 4Q --file "$tmp/in"
expect 1 "100000 bytes but the object holds 4096" "put of more than --bytes" -- \
	"$L1CTL" put --path "$pool" --bytes 4K --file "$tmp/in"
expect 1 "already published" "put under a key that is taken" -- \
	"$L1CTL" put --path "$pool" --file "$tmp/in" --key "shell/kv one" --publish
expect 1 "cannot read $tmp/nope" "put from a missing file" -- \
	"$L1CTL" put --path "$pool" --file "$tmp/nope"
expect 1 "out of memory|do not fit|larger than" "put larger than the pool" -- \
	"$L1CTL" put --path "$pool" --bytes 40M --file "$tmp/in"

expect 0 "published +102400 .*shell/kv one" "ls shows the object, its state and key" -- \
	"$L1CTL" ls --path "$pool"
expect 0 "" "get --key writes the bytes" -- "$L1CTL" get --path "$pool" --key "shell/kv one" \
	--out "$tmp/out1"
cmp -s "$tmp/in" "$tmp/out1" || { say "FAIL get --key: bytes differ"; fail=1; }
"$L1CTL" get --path "$pool" "$id1" >"$tmp/out2" 2>/dev/null
if cmp -s "$tmp/in" "$tmp/out2"; then
	say "ok   get ID to stdout: same bytes"
else
	say "FAIL get ID to stdout: bytes differ"
	fail=1
fi
expect 1 "no object is published under key 'nope'" "get of a missing key" -- \
	"$L1CTL" get --path "$pool" --key nope
has "l1ctl ls. lists the objects" "it says how to find the objects"
expect 2 "'abc' is not an object id" "get abc" -- "$L1CTL" get --path "$pool" abc
expect 2 "one object ID" "get without an id" -- "$L1CTL" get --path "$pool"

# ---- publish, rm -------------------------------------------------------------

expect 0 "^[0-9]+ objects/[0-9]+$" "put without --publish" -- \
	"$L1CTL" put --path "$pool" --bytes 8K --file "$tmp/small"
# the note about gc goes to stderr; the id is the first word
id3=$(printf '%s\n' "$OUT" | awk '/objects\// {print $1}')
expect 0 "published $id3 as 'later'" "publish ID --key" -- \
	"$L1CTL" publish --path "$pool" "$id3" --key later
expect 1 "not allocated" "publish of a published object" -- \
	"$L1CTL" publish --path "$pool" "$id3" --key again
expect 2 "ID and --key" "publish without --key" -- "$L1CTL" publish --path "$pool" "$id3"
expect 2 "not an object id" "publish x" -- "$L1CTL" publish --path "$pool" x --key y
expect 0 "freed 1 object" "rm ID" -- "$L1CTL" rm --path "$pool" "$id3"
expect 1 "nothing was freed" "rm of a freed object" -- "$L1CTL" rm --path "$pool" "$id3"
has "l1ctl ls. lists the objects" "it says how to find the objects"
expect 2 "1 to 256 object ids" "rm without ids" -- "$L1CTL" rm --path "$pool"
expect 2 "'zz' is not an object id" "rm zz" -- "$L1CTL" rm --path "$pool" zz

# ---- memcheck, gc ------------------------------------------------------------

expect 0 "" "memcheck of a healthy pool" -- "$L1CTL" memcheck --path "$pool"
expect 0 "" "memcheck --repair of a healthy pool" -- "$L1CTL" memcheck --repair --path "$pool"
expect 0 "^gc: " "gc" -- "$L1CTL" gc --path "$pool"

# a copy whose bitmap claims blocks no record owns: memcheck exit 3, repair
dmg=/dev/shm/l1ctl-shm-$$
"$L1CTL" create --path "$dmg" --size 16M --allow-shm --eager >/dev/null
bm=$(od -An -t u8 -j 144 -N 8 "$dmg" | tr -d ' ')
printf '\377\377\377\377\377\377\377\377' |
	dd of="$dmg" bs=1 seek=$((bm + 64)) conv=notrunc 2>/dev/null
expect 3 "problem" "memcheck of a damaged bitmap exits 3" -- "$L1CTL" memcheck --path "$dmg"
expect 0 "" "memcheck --repair fixes it" -- "$L1CTL" memcheck --repair --path "$dmg"
expect 0 "" "memcheck is clean after the repair" -- "$L1CTL" memcheck --path "$dmg"
"$L1CTL" destroy --path "$dmg" >/dev/null

# ---- a missing pool ----------------------------------------------------------

gone=$dir/no-such-pool-$$
for c in info ls gc memcheck; do
	expect 1 "no pool at $gone: create one with .l1ctl create" "$c of a missing pool" -- \
		"$L1CTL" $c --path "$gone"
done
expect 1 "no pool at $gone" "put into a missing pool" -- \
	"$L1CTL" put --path "$gone" --file "$tmp/in"
expect 1 "no pool at $gone" "get from a missing pool" -- "$L1CTL" get --path "$gone" 1
expect 1 "no pool at $gone" "rm in a missing pool" -- "$L1CTL" rm --path "$gone" 1
expect 1 "no pool at $gone" "publish in a missing pool" -- \
	"$L1CTL" publish --path "$gone" 1 --key k
expect 1 "no pool at $gone" "destroy of a missing pool" -- "$L1CTL" destroy --path "$gone"

# ---- another format version, not a pool ----------------------------------------

v9=/dev/shm/l1ctl-v9-$$
cp "$pool" "$v9" 2>/dev/null || "$L1CTL" create --path "$v9" --size 16M --allow-shm >/dev/null
printf '\011\000\000\000' | dd of="$v9" bs=1 seek=8 conv=notrunc 2>/dev/null
for c in info ls memcheck gc; do
	expect 1 "format version 9\.0" "$c of a format-9 pool" -- "$L1CTL" $c --path "$v9"
	has "remove it with .l1ctl destroy --force --path $v9" "$c says how to remove it"
done
expect 1 "format version 9\.0" "get from a format-9 pool" -- "$L1CTL" get --path "$v9" 1
expect 1 "destroy --force" "destroy of a format-9 pool asks for --force" -- \
	"$L1CTL" destroy --path "$v9"
test -e "$v9" || { say "FAIL destroy without --force removed the format-9 pool"; fail=1; }
expect 0 "destroyed $v9" "destroy --force of a format-9 pool" -- \
	"$L1CTL" destroy --force --path "$v9"
test -e "$v9" && { say "FAIL destroy --force left the format-9 pool"; fail=1; }

bad=/dev/shm/l1ctl-bad-$$
head -c 65536 /dev/zero >"$bad"
expect 1 "not an l1arena pool" "info of a file of zeros" -- "$L1CTL" info --path "$bad"

# ---- permissions ---------------------------------------------------------------

as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
if [ "$(id -u)" -ne 0 ]; then
	say "skip the permission checks: they need root to become nobody"
elif ! command -v setpriv >/dev/null || ! as_nobody test -x "$L1CTL"; then
	say "skip the permission checks: nobody cannot run $L1CTL (setpriv missing or path closed)"
else
	expect 1 "Permission denied.*|owner or as root" "info as nobody on a 0600 pool" -- \
		as_nobody "$L1CTL" info --path "$pool"
	has "run as the pool's owner or as root" "the permission message says what to do"
	expect 1 "Permission denied" "put as nobody on a 0600 pool" -- \
		as_nobody "$L1CTL" put --path "$pool" --bytes 4K --file "$tmp/small"
	expect 1 "Permission denied" "destroy as nobody" -- \
		as_nobody "$L1CTL" destroy --path "$pool"
	test -e "$pool" || { say "FAIL nobody destroyed root's pool"; fail=1; }
	# an open pool (0666): nobody attaches, but root's objects stay root's
	open=/dev/shm/l1ctl-zero-$$
	"$L1CTL" create --path "$open" --size 16M --allow-shm --mode 0666 >/dev/null
	oid=$("$L1CTL" put --path "$open" --bytes 4K --file "$tmp/small" --key mine --publish |
		cut -d' ' -f1)
	expect 0 "mine" "ls as nobody on a 0666 pool" -- as_nobody "$L1CTL" ls --path "$open"
	expect 1 "belongs to uid 0" "rm of root's object as nobody" -- \
		as_nobody "$L1CTL" rm --path "$open" "$oid"
	has "only an object's owner or root may free it" "it says who may"
	expect 0 "" "get of root's object as nobody (published objects are readable)" -- \
		as_nobody "$L1CTL" get --path "$open" --key mine --out /dev/null
	"$L1CTL" destroy --force --path "$open" >/dev/null
	# one more than are free and not reserved: setup must raise nr_hugepages
	free=$(. "$(dirname "$0")/../../tools/hugepages.sh"; hp_avail)
	expect 1 "needs root|run as root" "setup as nobody says it needs root" -- \
		as_nobody "$L1CTL" setup --hugepages $((free + 1)) --mount "$tmp/hp"
fi

# ---- setup ---------------------------------------------------------------------

expect 2 "count such as 512" "setup --hugepages 1G" -- "$L1CTL" setup --hugepages 1G
expect 2 "count such as 512" "setup --hugepages 0" -- "$L1CTL" setup --hugepages 0
expect 2 "more than this machine's memory" "setup --hugepages too many" -- \
	"$L1CTL" setup --hugepages 999999999
expect 2 "2M or 1G" "setup --page-size 3M" -- "$L1CTL" setup --page-size 3M
if [ "${L1_TEST_HUGETLBFS:-0}" = 1 ]; then
	# one free page on the mount tests/run.sh made: nothing to change
	expect 0 "hugetlbfs mounted at $dir" "setup on an existing mount" -- \
		"$L1CTL" setup --hugepages 1 --mount "$dir"
	# that mount is limited (size=): more pages than it has left are refused
	# with the real numbers (more pages in the kernel would not help)
	set -- $(stat -f -c '%b %f' "$dir")
	expect 1 "limited to $1 huge pages and has [0-9]+ free, fewer than the $(($2 + 1)) asked for" \
		"setup on a limited mount, asking for more than it has" -- \
		"$L1CTL" setup --hugepages $(($2 + 1)) --mount "$dir"
	# an eager pool larger than the mount's free pages: the numbers, not "N"
	expect 1 "not enough free huge pages: [0-9]+ needed, [0-9]+ free; run .l1ctl setup --hugepages [0-9]+." \
		"create beyond the free huge pages names the pages needed and free" -- \
		"$L1CTL" create --path "$dir/toobig-$$" --size $((($2 + 8) * 2))M
	test -e "$dir/toobig-$$" && { say "FAIL a failed create left $dir/toobig-$$"; rm -f "$dir/toobig-$$"; fail=1; }
fi

# ---- destroy ---------------------------------------------------------------------

expect 0 "^destroyed $pool$" "destroy" -- "$L1CTL" destroy --path "$pool"
test -e "$pool" && { say "FAIL destroy left $pool"; fail=1; }
expect 1 "no pool at $pool" "info after destroy" -- "$L1CTL" info --path "$pool"

[ $fail -eq 0 ] && say "test_l1ctl.sh: all checks passed"
exit $fail
