#!/bin/sh
# test_l1ctl.sh - every l1ctl subcommand through the real binary, the way an
# operator meets it: --help for each, the normal path (create, info, put,
# ls, get, publish, rm, memcheck, gc, destroy), and the ways it goes wrong:
# bad sizes and options (exit 2; also loose ones: spaces, hex, signs, ids
# like -1, an empty key, --key without --publish), a missing pool, a user without permission
# (nobody, through setpriv), a pool of another format version and a file
# that is not a pool (exit 1, with a sentence that says what to do), and a
# pool whose bitmap was damaged (memcheck exit 3, then --repair); and gc
# with a writer in its own PID namespace (`unshare --pid --fork
# --mount-proc`: spared while it lives, taken once dead).  Pools go
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
		"/dev/shm/l1ctl-zero-$$" "/dev/shm/l1ctl-victim-$$" "/dev/shm/l1ctl-trap-$$" \
		"/dev/shm/l1ctl-victim2-$$" "/dev/shm/l1ctl-moved-$$" "/dev/shm/l1ctl-group-$$"
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
# loose sizes: refused with a sentence, never read some other way
expect 2 "is not a size: decimal digits" "create --size ' 4M' (leading space)" -- \
	"$L1CTL" create --path "$pool" --size ' 4M' $shm
expect 2 "is not a size" "create --size '4M ' (trailing space)" -- \
	"$L1CTL" create --path "$pool" --size '4M ' $shm
expect 2 "no spaces, signs or hex" "create --size 0x10000 (hex)" -- \
	"$L1CTL" create --path "$pool" --size 0x10000 $shm
expect 2 "is not a size" "create --size 1e6 (exponent)" -- \
	"$L1CTL" create --path "$pool" --size 1e6 $shm
expect 2 "is not a size" "create --size +4M (sign)" -- \
	"$L1CTL" create --path "$pool" --size +4M $shm
test -e "$pool" && { say "FAIL a refused create left $pool behind"; fail=1; }
expect 0 "^created $pool: 64.00 MiB lazy pool" "create --size 64M" -- \
	"$L1CTL" create --path "$pool" --size 64M $shm
expect 1 "add --force to replace it" "create over a pool says to use --force" -- \
	"$L1CTL" create --path "$pool" --size 64M $shm
expect 0 "^created $pool: 32.00 MiB eager pool" "create --force --eager replaces it" -- \
	"$L1CTL" create --path "$pool" --size 32M --eager --force $shm
ls -a "$dir" | grep -q "^\.l1ctl-$$\.l1new\." &&
	{ say "FAIL create left a temporary file in $dir"; fail=1; }

# ---- info, put, ls, get ----------------------------------------------------

expect 0 "^used +0 B of 32.00 MiB" "info" -- "$L1CTL" info --path "$pool"
has "^lock +free; waits give up after 5000 ms" "info names the lock's holder (none)"
has "^given back +0 failed growth" "info says what failed growth gave back"
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
expect 2 "without --publish does nothing" "put --key without --publish" -- \
	"$L1CTL" put --path "$pool" --key lonely --file "$tmp/in"
expect 2 "--key is empty" "put --key '' --publish" -- \
	"$L1CTL" put --path "$pool" --key "" --publish --file "$tmp/in"
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

expect 0 "published +97.66 KiB +100.00 KiB .*shell/kv one" "ls shows the object, its state and key" -- \
	"$L1CTL" ls --path "$pool"
expect 0 "published +100000 +102400 .*shell/kv one" "ls --bytes shows exact sizes" -- \
	"$L1CTL" ls --path "$pool" --bytes
expect 0 "^ID +STATE +SIZE +PHYS +OWNER +UID +MODE +HOLDS" "ls has uid and mode columns" -- \
	"$L1CTL" ls --path "$pool"
has "published +97.66 KiB +100.00 KiB +[0-9]+ +$(id -u) +0600 " "ls shows the uid and mode"
# a key with a newline and an escape sequence neither forges a row nor reaches
# the terminal; --json gives it back exactly
evil=$(printf 'evil\n4242 published 1 B 1 0 0600 0 [1]:uint8 forged\033[31m')
printf 'x' | "$L1CTL" put --path "$pool" --key "$evil" --publish >/dev/null 2>&1
"$L1CTL" ls --path "$pool" >"$tmp/ls" 2>/dev/null
if [ "$(wc -l <"$tmp/ls")" -eq 4 ] && ! grep -q "^4242" "$tmp/ls" &&
   ! LC_ALL=C grep -q "$(printf '\033')" "$tmp/ls" && grep -q 'evil\\x0a4242.*forged\\x1b\[31m' "$tmp/ls"; then
	say "ok   ls escapes a key with a newline and an escape sequence"
else
	say "FAIL ls does not escape keys:"; sed 's/^/       /' "$tmp/ls" | cat -v; fail=1
fi
if "$L1CTL" ls --path "$pool" --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
keys = sorted(r["key"] for r in rows)
assert len(rows) == 3, rows
assert sys.argv[1] in keys and "shell/kv one" in keys, keys
r = [r for r in rows if r["key"] == "shell/kv one"][0]
assert r["size"] == 100000 and r["physical_size"] == 102400 and r["state"] == "published" and r["mode"] == "0600", r
assert r["uid"] == int(sys.argv[2]) and r["published"].endswith("Z"), r
' "$evil" "$(id -u)"; then
	say "ok   ls --json: one object per line, exact figures, keys as they are"
else
	say "FAIL ls --json"; fail=1
fi
expect 1 'cannot publish: key .evil\\x0a4242' "an error quoting a key escapes it" -- \
	sh -c 'printf x | "$0" put --path "$1" --key "$2" --publish' "$L1CTL" "$pool" "$evil"
if printf '%s\n' "$OUT" | LC_ALL=C grep -q "$(printf '\033')"; then
	say "FAIL the error message carries an escape byte"; fail=1
fi
id_evil=$("$L1CTL" ls --path "$pool" --json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
print([r["id"] for r in map(json.loads, sys.stdin) if r["key"].startswith("evil")][0])')
"$L1CTL" rm --path "$pool" "$id_evil" >/dev/null 2>&1
# metrics: every series names the pool; --textfile writes atomically, 0644
expect 0 "^l1arena_used_bytes\\{pool=\"$pool\"\\} " "metrics labels every series with the pool" -- \
	"$L1CTL" metrics --path "$pool"
if printf '%s\n' "$OUT" | grep -v '^#' | grep -vq "^l1arena_[a-z_]*{pool=\"$pool\"[,}]"; then
	say "FAIL a series without the pool label:"; printf '%s\n' "$OUT" | grep -v '^#' |
		grep -v "{pool=\"$pool\"" | head -3; fail=1
fi
has "^l1arena_freed_held_bytes\\{" "metrics has the bytes of freed objects still held"
has "^l1arena_zero_waits_total\\{" "metrics has the allocations that waited for zeroing"
has "^l1arena_gc_dropped_holds_total\\{" "metrics has gc's dropped holds"
if printf '%s\n' "$OUT" | grep -Eq '_ratio|status="[a-z]*"\} [0-9]*[1-9]|ooms'; then
	say "FAIL metrics has a ratio series, a summed status label or the old ooms name"; fail=1
fi
mkdir -p "$tmp/textfile"
expect 0 "wrote $tmp/textfile/l1arena_.*\\.prom" "metrics --textfile" -- \
	sh -c 'umask 077; exec "$0" metrics --path "$1" --textfile "$2"' "$L1CTL" "$pool" "$tmp/textfile"
prom=$(ls "$tmp/textfile"/*.prom 2>/dev/null | head -n 1)
if [ -n "$prom" ] && [ "$(stat -c %a "$prom")" = 644 ] &&
   [ "$(ls -A "$tmp/textfile" | wc -l)" -eq 1 ] && grep -q "^l1arena_size_bytes{pool=" "$prom"; then
	say "ok   the textfile is mode 0644 whatever the umask, and no temporary file is left"
else
	say "FAIL textfile: $(ls -lA "$tmp/textfile")"; fail=1
fi
chmod 0444 "$prom"
expect 0 "wrote " "metrics --textfile replaces a read-only file (rename)" -- \
	"$L1CTL" metrics --path "$pool" --textfile "$tmp/textfile"
expect 0 "" "metrics_lint.py (promtool's rules) on the textfile" -- \
	/usr/bin/python3 "$(dirname "$0")/metrics_lint.py" "$prom"
if command -v promtool >/dev/null 2>&1; then
	expect 0 "" "promtool check metrics on the textfile" -- sh -c 'promtool check metrics <"$0"' "$prom"
fi
expect 1 "cannot write in $tmp/nodir" "metrics --textfile into a missing directory" -- \
	"$L1CTL" metrics --path "$pool" --textfile "$tmp/nodir"
for b in "$L1CTL" "$BUILD/bin/l1fs" "$BUILD/bin/l1bench" "$BUILD/bin/kvdemo"; do
	expect 0 "l1arena.* 1\.0|version 1\.0|for l1arena 1\.0" "$(basename "$b") --version" -- "$b" --version
done
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
head -c 5 "$tmp/in" >"$tmp/five"
expect 0 "keys/five$" "put of 5 bytes" -- \
	"$L1CTL" put --path "$pool" --file "$tmp/five" --key five --publish
expect 0 "published +5 +4096 .*five" "ls: data size 5, physical 4096" -- "$L1CTL" ls --bytes --path "$pool"
"$L1CTL" get --path "$pool" --key five --out "$tmp/five.out" 2>/dev/null
cmp -s "$tmp/five" "$tmp/five.out" && say "ok   get of a 5-byte object: 5 bytes back" ||
	{ say "FAIL get of a 5-byte object: bytes differ"; fail=1; }
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
expect 2 "'-1' is not an object id" "rm -- -1 (not 2^64-1)" -- "$L1CTL" rm --path "$pool" -- -1
expect 2 "' 7' is not an object id" "rm ' 7'" -- "$L1CTL" rm --path "$pool" ' 7'

# ---- memcheck, gc ------------------------------------------------------------

expect 0 "" "memcheck of a healthy pool" -- "$L1CTL" memcheck --path "$pool"
expect 0 "" "memcheck --repair of a healthy pool" -- "$L1CTL" memcheck --repair --path "$pool"
expect 0 "^gc: " "gc" -- "$L1CTL" gc --path "$pool"

# ---- liveness: a writer in its own PID namespace (the issue's reproduction) --

# `unshare --pid --fork --mount-proc` as a container runtime would: the
# writer is PID 1 there, and PID 1 here is init.  gc from here must leave
# its unpublished object alone while it lives, and take it once it is dead.
if ! unshare --pid --fork --mount-proc true 2>/dev/null; then
	say "skip writer in a PID namespace: unshare --pid --fork --mount-proc is refused here"
elif ! /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
	say "skip writer in a PID namespace: /usr/bin/python3 with numpy is needed for the writer"
else
	# an ASan library in python needs its runtime first (tests/python/conftest.py)
	case $BUILD in *asan*) san_pre=$(cc -print-file-name=libasan.so) ;; *) san_pre="" ;; esac
	LD_PRELOAD=${san_pre:-${LD_PRELOAD:-}} ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} \
	PYTHONPATH=tools/python L1ARENA_LIB=$BUILD/lib/libl1arena.so \
	unshare --pid --fork --mount-proc /usr/bin/python3 -c '
import os, sys, time
from l1arena import L1MemoryManager
m = L1MemoryManager.attach(sys.argv[1], pin="off")
err, objs = m.allocate_bytes(65536, 1)
a = objs[0].array
a[:] = 7
open(sys.argv[2] + "/ready", "w").close()
while not os.path.exists(sys.argv[2] + "/go"):
    time.sleep(0.05)
os._exit(0 if (a == 7).all() else 1)   # dies attached
' "$pool" "$tmp" >"$tmp/writer.log" 2>&1 &
	wpid=$!
	i=0
	while [ ! -e "$tmp/ready" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
	expect 0 "^gc: 0 objects of dead writers reclaimed .* 0 clients" \
		"gc from the host spares a writer in its own PID namespace" -- \
		"$L1CTL" gc --path "$pool"
	expect 0 "alive" "info lists it alive" -- "$L1CTL" info --path "$pool"
	touch "$tmp/go"
	wait "$wpid"
	wrc=$?
	if [ "$wrc" -eq 0 ]; then
		say "ok   its bytes were still its own"
	else
		say "FAIL the namespaced writer exited $wrc:"; sed 's/^/       /' "$tmp/writer.log"
		fail=1
	fi
	expect 0 "^gc: 1 objects of dead writers reclaimed .* 1 clients" \
		"gc takes it once it is dead" -- "$L1CTL" gc --path "$pool"
fi

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
	has "one trust domain: give each tenant its own pool" "it says a pool is one trust domain"
	if printf '%s\n' "$OUT" | grep -q 0666; then
		say "FAIL the permission message still suggests --mode 0666"; fail=1
	fi
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
	# the pool's group reads it (mode 0640): read-only attach, no writes
	grp=/dev/shm/l1ctl-group-$$
	"$L1CTL" create --path "$grp" --size 16M --allow-shm --mode 0640 >/dev/null
	chgrp nogroup "$grp"
	printf 'group data' >"$tmp/g"
	gid=$("$L1CTL" put --path "$grp" --file "$tmp/g" --key g --publish | cut -d' ' -f1)
	expect 1 "can attach read-only" "ls read-write by the group says read-only works" -- \
		as_nobody "$L1CTL" ls --path "$grp"
	expect 0 "$gid .* g\$" "ls --read-only by the group" -- \
		as_nobody "$L1CTL" ls --read-only --path "$grp"
	expect 0 "^group data\$" "get --read-only --key by the group" -- \
		as_nobody "$L1CTL" get --read-only --path "$grp" --key g
	expect 0 "" "info --read-only by the group" -- \
		as_nobody "$L1CTL" info --read-only --path "$grp"
	expect 2 "takes no option --read-only" "rm takes no --read-only" -- \
		as_nobody "$L1CTL" rm --read-only --path "$grp" "$gid"
	"$L1CTL" destroy --force --path "$grp" >/dev/null
	# one more than are free and not reserved: setup must raise nr_hugepages
	free=$(. "$(dirname "$0")/../../tools/hugepages.sh"; hp_avail)
	expect 1 "needs root|run as root" "setup as nobody says it needs root" -- \
		as_nobody "$L1CTL" setup --hugepages $((free + 1)) --mount "$tmp/hp"
fi

# ---- a path means that path ---------------------------------------------------
# Open and destroy act on exactly the path given, never on /dev/shm/<basename>
# (issue 11, item 4: the three cases as they were seen); only create moves a
# pool, when --allow-shm lets it, and then it says so and replaces nothing.

as_other() { if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	as_nobody "$@"; else "$@"; fi; }
"$L1CTL" create --path "/dev/shm/l1ctl-victim-$$" --size 16M --allow-shm >/dev/null
expect 1 "no pool at $dir/l1ctl-victim-$$" "destroy of a missing path leaves /dev/shm/NAME alone" -- \
	"$L1CTL" destroy --path "$dir/l1ctl-victim-$$"
test -e "/dev/shm/l1ctl-victim-$$" || { say "FAIL destroy removed /dev/shm/l1ctl-victim-$$"; fail=1; }
expect 1 "no pool at $dir/l1ctl-victim-$$" "destroy --force of a missing path, the same" -- \
	"$L1CTL" destroy --force --path "$dir/l1ctl-victim-$$"
test -e "/dev/shm/l1ctl-victim-$$" || { say "FAIL destroy --force removed /dev/shm/l1ctl-victim-$$"; fail=1; }
# another user's trap in /dev/shm is not the pool root named
trap_pool=/dev/shm/l1ctl-trap-$$
as_other "$L1CTL" create --path "$trap_pool" --size 16M --mode 0666 --allow-shm >/dev/null
chmod 0666 "$trap_pool" 2>/dev/null
printf 'TOP SECRET KV DATA' >"$tmp/secret"
expect 1 "no pool at $dir/l1ctl-trap-$$" "put to a missing path does not land in /dev/shm/NAME" -- \
	"$L1CTL" put --path "$dir/l1ctl-trap-$$" --file "$tmp/secret" --key secret --publish
expect 1 "no object is published under key 'secret'" "nothing reached the trap" -- \
	as_other "$L1CTL" get --path "$trap_pool" --key secret
expect 1 "no pool at $dir/l1ctl-trap-$$" "info of a missing path, not of /dev/shm/NAME" -- \
	"$L1CTL" info --path "$dir/l1ctl-trap-$$"
# create with --force through the fallback never replaces what is there
live=/dev/shm/l1ctl-victim2-$$
"$L1CTL" create --path "$live" --size 16M --allow-shm >/dev/null
lid=$("$L1CTL" put --path "$live" --bytes 4K --file "$tmp/secret" --key kept --publish | cut -d' ' -f1)
expect 1 "a file is there already" "create --force via the fallback refuses to replace $live" -- \
	"$L1CTL" create --path "/no-such-dir-$$/l1ctl-victim2-$$" --size 16M --allow-shm --force
expect 0 "TOP SECRET" "the live pool at $live is intact" -- \
	"$L1CTL" get --path "$live" --key kept
# the fallback, when asked, says where the pool went
expect 0 "created /dev/shm/l1ctl-moved-$$" "create of a missing directory with --allow-shm" -- \
	"$L1CTL" create --path "/no-such-dir-$$/l1ctl-moved-$$" --size 16M --allow-shm
has "not at /no-such-dir-$$/l1ctl-moved-$$" "it says the pool is not where it was asked for"
expect 1 "not on hugetlbfs .its directory does not exist" "without --allow-shm it refuses" -- \
	"$L1CTL" create --path "/no-such-dir-$$/l1ctl-moved2-$$" --size 16M
for f in "/dev/shm/l1ctl-victim-$$" "$trap_pool" "$live" "/dev/shm/l1ctl-moved-$$"; do
	"$L1CTL" destroy --force --path "$f" >/dev/null
done

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
