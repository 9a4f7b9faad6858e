#!/bin/sh
# test_xfer.sh - l1xfer between two "machines": two network namespaces made
# here (names with this shell's pid) joined by a veth pair, 10.77.0.1 and
# 10.77.0.2, UCX restricted to TCP over the veth (what a cluster sets with
# UCX_TLS / UCX_NET_DEVICES); each side its own pool under L1_TEST_DIR.
# Checks: byte-exact get of mixed layouts, published on arrival; present keys
# skipped, a missing key reported; --prefix; 1000 keys in one lookup; a key
# freed on the server between lookup and read still delivers its own bytes
# (the hold), while new objects are written on the server meanwhile; kill -9
# of the server and of the client mid-transfer, at a gate between lookup and
# read and on a throttled link (tc tbf) while reads are in flight: nothing
# half-written is published, unpublished objects are freed, the server drops
# a dead client's holds by itself and gc drops a dead server's; put.
# Skipped, with the reason, where namespaces or veth pairs are refused.
# Everything made is removed on every exit path.  Exit status: 0 if all passed.
set -u
BUILD=${BUILD:-build}
ROOT=$(pwd)
X=$ROOT/$BUILD/bin/l1xfer
C=$ROOT/$BUILD/bin/l1ctl
dir=${L1_TEST_DIR:-${L1_TEST_SHM_DIR:-/dev/shm}}
shm=""
[ "${L1_TEST_HUGETLBFS:-0}" = 1 ] || shm=--allow-shm
A=$dir/xfer-a-$$
B=$dir/xfer-b-$$
nsa=l1xa-$$ nsb=l1xb-$$ va=l1xva$$ vb=l1xvb$$
ipa=10.77.0.1 ipb=10.77.0.2
tmp=""
spid="" cpid="" port=""
fail=0
made_ns=""

say() { printf '%s\n' "$*"; }
ok() { say "ok   $*"; }
bad() { say "FAIL $*"; fail=1; }
# the data helper (Python); a sanitized library needs its runtime preloaded
lib=$ROOT/$BUILD/lib/libl1arena.so
preload=$(ldd "$lib" 2>/dev/null | awk '/lib[at]san\.so/ {print $3; exit}')
py() { env PYTHONPATH="$ROOT/tools/python" L1ARENA_LIB="$lib" ${preload:+LD_PRELOAD=$preload} \
	ASAN_OPTIONS=detect_leaks=0 /usr/bin/python3 "$ROOT/tests/sh/xfer_data.py" "$@"; }

cleanup() {
	[ -n "$cpid" ] && kill -9 "$cpid" 2>/dev/null
	[ -n "$spid" ] && kill -9 "$spid" 2>/dev/null
	wait 2>/dev/null
	if [ -n "$made_ns" ]; then
		ip netns del "$nsa" 2>/dev/null
		ip netns del "$nsb" 2>/dev/null
		ip link del "$va" 2>/dev/null
	fi
	"$C" destroy --force --path "$A" >/dev/null 2>&1
	"$C" destroy --force --path "$B" >/dev/null 2>&1
	[ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$X" ] || { say "FAIL $X is not built (make bins; needs libucx-dev)"; exit 1; }
[ "$(id -u)" -eq 0 ] || { say "SKIP test_xfer.sh: network namespaces need root"; exit 0; }
tmp=$(mktemp -d /tmp/l1xfer-test.XXXXXX)

# ---- two machines ------------------------------------------------------------
if ! ip netns add "$nsa" 2>"$tmp/err"; then
	say "SKIP test_xfer.sh: network namespaces are refused here: $(cat "$tmp/err")"
	exit 0
fi
made_ns=1
ip netns add "$nsb" && ip link add "$va" type veth peer name "$vb" 2>"$tmp/err" || {
	say "SKIP test_xfer.sh: cannot make a veth pair: $(cat "$tmp/err")"; exit 0; }
ip link set "$va" netns "$nsa" && ip link set "$vb" netns "$nsb" &&
	ip -n "$nsa" addr add $ipa/24 dev "$va" && ip -n "$nsb" addr add $ipb/24 dev "$vb" &&
	ip -n "$nsa" link set "$va" up && ip -n "$nsb" link set "$vb" up &&
	ip -n "$nsa" link set lo up && ip -n "$nsb" link set lo up ||
	{ say "FAIL setting up the veth pair"; exit 1; }
say "two machines: $nsa ($ipa on $va) and $nsb ($ipb on $vb)"

in_a() { ip netns exec "$nsa" env UCX_TLS=tcp UCX_NET_DEVICES="$va" "$@"; }
in_b() { ip netns exec "$nsb" env UCX_TLS=tcp UCX_NET_DEVICES="$vb" "$@"; }
# bg_in NS DEV PIDVAR CMD...: starts CMD in the background inside NS and sets
# PIDVAR to CMD's own pid (ip netns exec forks: its pid is not the command's)
# and PIDVAR_job to the job's (wait on it for CMD's exit status)
bg_in() {
	ns=$1 dev=$2 var=$3
	shift 3
	rm -f "$tmp/pid"
	ip netns exec "$ns" sh -c 'echo $$ >"$0.new"; mv "$0.new" "$0"; exec "$@"' "$tmp/pid" \
		env UCX_TLS=tcp UCX_NET_DEVICES="$dev" "$@" &
	eval "${var}_job=$!"
	i=0
	while [ ! -s "$tmp/pid" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	eval "$var=\$(cat "\$tmp/pid")"
}
# waits until the process is gone (not our child: ip netns exec is)
gone() {
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
}

"$C" create --size 128M $shm --path "$A" >/dev/null &&
	"$C" create --size 128M $shm --path "$B" >/dev/null || { say "FAIL creating the pools"; exit 1; }

# waits up to 20 s for a line matching RE in FILE
wait_for() {
	i=0
	while ! grep -Eq -- "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 200 ] && return 1
		sleep 0.1
	done
}

start_server() {
	: >"$tmp/srv.out"
	bg_in "$nsa" "$va" spid "$X" serve --arena "$A" --listen $ipa:0 >"$tmp/srv.out" 2>>"$tmp/srv.err"
	wait_for "$tmp/srv.out" "listening on" || { bad "the server did not start"; cat "$tmp/srv.err"; exit 1; }
	port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$tmp/srv.out")
	peer=$ipa:$port
}

keys() { # prefix first count
	i=$2
	while [ $i -lt $(($2 + $3)) ]; do printf '%s%05d\n' "$1" $i; i=$((i + 1)); done
}
holds() { "$C" info --path "$1" | awk '$1 == "holds" {print $2}'; }
count_state() { "$C" ls --path "$1" 2>/dev/null | awk -v s="$2" '$2 == s' | wc -l; }

# ---- data on machine A ---------------------------------------------------------
py fill "$A" mix/ 40 "[2,32,128]:fp16" "[2,16,1024]:bf16" "[1000]:int32" \
	"[3]:uint8;[2,5]:fp32;[7]:int64" "[2,4,16,1024]:fp16" "[4097]:uint8" >/dev/null &&
	py fill "$A" k/ 1000 "[2,32,128]:fp16" >/dev/null &&
	py fill "$A" pre/ 10 "[100]:uint8" >/dev/null &&
	py fill "$A" free/ 4 "[1048576]:uint8" >/dev/null &&
	py fill "$A" big/ 16 "[1048576]:uint8" >/dev/null &&
	py fill "$A" cl/ 8 "[1048576]:uint8" >/dev/null ||
	{ say "FAIL filling pool A"; exit 1; }
ok "pool A filled: mixed layouts, 1000 x 16 KiB, 1 MiB objects"

start_server

# ---- byte-exact, published on arrival ------------------------------------------
keys mix/ 0 40 >"$tmp/mix.keys"
out=$(in_b "$X" get --arena "$B" --from "$peer" --keys "$tmp/mix.keys" 2>&1)
if [ $? -eq 0 ] && printf '%s' "$out" | grep -q "40 keys: 40 moved"; then ok "get of 40 mixed-layout keys"
else bad "get of 40 mixed-layout keys: $out"; fi
r=$(py check "$B" mix/ 40 2>&1) && ok "mixed layouts byte-exact ($r)" || bad "mixed layouts: $r"
"$C" ls --bytes --path "$A" 2>/dev/null | awk '$NF ~ /^mix\// {print $9, $NF}' | sort >"$tmp/la"
"$C" ls --bytes --path "$B" 2>/dev/null | awk '$NF ~ /^mix\// {print $9, $NF}' | sort >"$tmp/lb"
cmp -s "$tmp/la" "$tmp/lb" && ok "same layouts under the same keys on both sides" ||
	bad "layouts differ: $(diff "$tmp/la" "$tmp/lb" | head -3)"
[ "$(count_state "$B" published)" -eq 40 ] && [ "$(count_state "$B" allocated)" -eq 0 ] &&
	ok "all 40 published on arrival, nothing left unpublished" || bad "states on B: $("$C" ls --path "$B" | head)"

out=$(in_b "$X" get --arena "$B" --from "$peer" --keys "$tmp/mix.keys" 2>&1)
[ $? -eq 0 ] && printf '%s' "$out" | grep -q "0 moved.*40 already there" &&
	ok "a second get skips the 40 present keys" || bad "second get: $out"
out=$(in_b "$X" get --arena "$B" --from "$peer" mix/00000 no/such-key 2>&1)
[ $? -eq 1 ] && printf '%s' "$out" | grep -q "not published at $peer (the first: 'no/such-key')" &&
	ok "a key the peer lacks: exit 1 and a sentence" || bad "missing key: $out"
out=$(in_b "$X" get --arena "$B" --from "$peer" --prefix pre/ 2>&1)
[ $? -eq 0 ] && py check "$B" pre/ 10 >/dev/null && ok "--prefix pre/: 10 keys" || bad "--prefix: $out"

# ---- 1000 keys in one request ----------------------------------------------------
keys k/ 0 1000 >"$tmp/k.keys"
out=$(in_b "$X" get --arena "$B" --from "$peer" --chunk 1000 --keys "$tmp/k.keys" 2>&1)
if [ $? -eq 0 ] && printf '%s' "$out" | grep -q "1000 keys: 1000 moved"; then
	ok "1000 keys of 16 KiB in one lookup: $(printf '%s' "$out" | sed -n 's/.* in \([0-9.]* s\).*/\1/p')"
else bad "1000 keys: $out"; fi
r=$(py check "$B" k/ 1000 2>&1) && ok "1000 keys byte-exact" || bad "1000 keys: $r"
[ "$(holds "$A")" = 0 ] && ok "no hold left on the server after the gets" || bad "holds on A: $(holds "$A")"

# ---- a key freed on the server between lookup and read -----------------------------
gate=$tmp/gate.free
bg_in "$nsb" "$vb" cpid env L1XFER_TEST_GATE="$gate" "$X" get --arena "$B" --from "$peer" \
	--prefix free/ >"$tmp/cl.out" 2>"$tmp/cl.err"
if wait_for "$tmp/cl.err" "test gate"; then
	ids=$("$C" ls --path "$A" 2>/dev/null | awk '$NF ~ /^free\// {print $1}')
	"$C" rm --path "$A" $ids >/dev/null 2>&1 && ok "freed the 4 looked-up keys on the server" ||
		bad "rm of held objects on A"
	[ "$(count_state "$A" doomed)" -eq 4 ] && ok "they wait for the peer's holds (doomed)" ||
		bad "not doomed: $("$C" ls --path "$A" | grep -v -e k/ -e mix/)"
	py fill "$A" over/ 12 "[1048576]:uint8" >/dev/null && ok "12 MiB of new objects written on the server meanwhile"
	touch "$gate"
	wait $cpid_job; rc=$?; cpid=""
	[ $rc -eq 0 ] && r=$(py check "$B" free/ 4 2>&1) &&
		ok "the reads delivered the freed objects' own bytes ($r)" || bad "freed keys: rc $rc $r $(cat "$tmp/cl.err")"
	i=0
	while [ "$(count_state "$A" doomed)" -ne 0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	[ "$(count_state "$A" doomed)" -eq 0 ] && [ "$(holds "$A")" = 0 ] &&
		ok "once the peer was done the freed objects went" || bad "doomed objects stay on A"
else
	bad "the client never reached the gate: $(cat "$tmp/cl.err")"
fi

# ---- kill -9 of the server between lookup and read -----------------------------------
gate=$tmp/gate.srv
keys big/ 0 16 >"$tmp/big.keys"
bg_in "$nsb" "$vb" cpid env L1XFER_TEST_GATE="$gate" L1XFER_TEST_GATE_CHUNK=2 "$X" get \
	--arena "$B" --from "$peer" --chunk 4 --keys "$tmp/big.keys" >"$tmp/cl.out" 2>"$tmp/cl.err"
if wait_for "$tmp/cl.err" "test gate"; then
	i=0
	until py check "$B" big/ 8 0 >/dev/null 2>&1 || [ $i -gt 100 ]; do sleep 0.1; i=$((i + 1)); done
	kill -9 $spid; gone $spid; spid=""
	touch "$gate"
	wait $cpid_job; rc=$?; cpid=""
	[ $rc -eq 1 ] && grep -q "connection to $peer failed" "$tmp/cl.err" &&
		ok "server killed: the client says so and exits 1: $(tail -n 1 "$tmp/cl.err")" ||
		bad "server killed: rc $rc, $(cat "$tmp/cl.err")"
	# chunks 0 and 1 were in before the kill; chunk 3 may have been; chunk 2
	# was looked up but not read
	r=$(py check "$B" big/ 8 0 2>&1) && r2=$(py absent "$B" big/ 4 8 2>&1) &&
		r3=$(py exact "$B" big/ 16 2>&1) &&
		ok "chunks read before the kill published byte-exact ($r3), the held one not published" ||
		bad "after the server's death: $r $r2 $r3"
	[ "$(count_state "$B" allocated)" -eq 0 ] && ok "the client freed its unpublished objects itself" ||
		bad "unpublished objects left on B: $(count_state "$B" allocated)"
	h=$(holds "$A")
	"$C" gc --path "$A" >/dev/null
	[ "$h" -gt 0 ] && [ "$(holds "$A")" = 0 ] && ok "the dead server's $h holds dropped by gc (backstop)" ||
		bad "holds on A: $h before gc, $(holds "$A") after"
else
	bad "the client never reached the gate: $(cat "$tmp/cl.err")"
fi
start_server

# ---- kill -9 of the client between lookup and read -----------------------------------
gate=$tmp/gate.cl
bg_in "$nsb" "$vb" cpid env L1XFER_TEST_GATE="$gate" L1XFER_TEST_GATE_CHUNK=1 "$X" get \
	--arena "$B" --from "$peer" --chunk 4 --prefix cl/ >"$tmp/cl.out" 2>"$tmp/cl.err"
if wait_for "$tmp/cl.err" "test gate"; then
	h=$(holds "$A")
	kill -9 $cpid; gone $cpid; cpid=""
	i=0
	while [ "$(holds "$A")" != 0 ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
	[ "$h" -gt 0 ] && [ "$(holds "$A")" = 0 ] && kill -0 $spid &&
		ok "client killed: the live server released its $h holds by itself ($(grep -c released "$tmp/srv.err") peer(s) dropped)" ||
		bad "holds on A after the client's death: $h, then $(holds "$A")"
	"$C" gc --path "$B" >/dev/null
	[ "$(count_state "$B" allocated)" -eq 0 ] && r=$(py exact "$B" cl/ 8 2>&1) &&
		ok "nothing unpublished left on B after gc; published ones exact ($r)" || bad "B after the client's death: $r"
else
	bad "the client never reached the gate: $(cat "$tmp/cl.err")"
fi

# ---- kill -9 while reads are in flight, on a throttled link --------------------------
if ip netns exec "$nsa" tc qdisc add dev "$va" root tbf rate 40mbit burst 32kb latency 400ms 2>"$tmp/err"; then
	for victim in server client; do
		py fill "$A" thr-$victim/ 24 "[1048576]:uint8" >/dev/null
		bg_in "$nsb" "$vb" cpid "$X" get --arena "$B" --from "$peer" --chunk 4 \
			--prefix thr-$victim/ >"$tmp/cl.out" 2>"$tmp/cl.err"
		sleep 2          # 24 MiB take about 5 s at 40 Mbit/s
		if [ $victim = server ]; then
			kill -9 $spid; gone $spid; spid=""
			wait $cpid_job; rc=$?; cpid=""
			"$C" gc --path "$A" >/dev/null
		else
			kill -9 $cpid; gone $cpid; rc=137; cpid=""
			i=0
			while [ "$(holds "$A")" != 0 ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
			"$C" gc --path "$B" >/dev/null
		fi
		r=$(py exact "$B" thr-$victim/ 24 2>&1)
		n=$(printf '%s' "$r" | sed -n 's/exact: \([0-9]*\) of.*/\1/p')
		if [ $rc -ne 0 ] && [ -n "$n" ] && [ "$n" -lt 24 ] && [ "$(count_state "$B" allocated)" -eq 0 ] &&
			[ "$(holds "$A")" = 0 ]; then
			ok "$victim killed mid-read: $n of 24 published, all byte-exact; no unpublished object, no hold left"
		else
			bad "$victim killed mid-read: rc $rc, $r, $(count_state "$B" allocated) unpublished, $(holds "$A") holds"
		fi
		[ -z "$spid" ] && start_server
	done
	ip netns exec "$nsa" tc qdisc del dev "$va" root 2>/dev/null
else
	say "skip kills on a throttled link: tc tbf refused: $(cat "$tmp/err")"
fi

# ---- put -------------------------------------------------------------------------
py fill "$B" up/ 6 "[2,32,128]:fp16" "[5]:int64;[3]:uint8" >/dev/null
out=$(in_b "$X" put --arena "$B" --to "$peer" --prefix up/ 2>&1)
[ $? -eq 0 ] && printf '%s' "$out" | grep -q "6 keys: 6 moved" && r=$(py check "$A" up/ 6 2>&1) &&
	ok "put of 6 keys to the peer, byte-exact there" || bad "put: $out $r"
out=$(in_b "$X" put --arena "$B" --to "$peer" --prefix mix/ 2>&1)
[ $? -eq 0 ] && printf '%s' "$out" | grep -q "0 moved.*40 already there" &&
	ok "put skips the keys the peer has" || bad "put of present keys: $out"
[ "$(count_state "$A" allocated)" -eq 0 ] && ok "no unpublished object left on the server" || bad "allocated on A"

kill -TERM $spid; wait $spid_job; rc=$?; spid=""
[ $rc -eq 0 ] && ok "the server stops on SIGTERM" || bad "server exit $rc on SIGTERM"
[ $fail -eq 0 ] || { say "server log:"; sed 's/^/    /' "$tmp/srv.err" | tail -20; }
exit $fail
