#!/bin/sh
# test_bench.sh - l1bench's own checks (pools in /dev/shm, --quick sizes).
# kv's figures agree with each other (the zeroing-on pass alone):
#   - the "bytes alone" baseline (the same trace on a pool that fails an
#     allocate only when too few bytes are free) is what the ideal pass
#     alone reports, run after run;
#   - on a fresh pool no placement passes it: the pool's utilisation at the
#     first OOM is at most the baseline's;
#   - memcheck finds nothing after the trace, the shares of zeroed bytes add
#     up to 1, and the zeroing bound line has both figures;
#   - l1bench sustain (the 16 384-live trace, a few steps) puts each of its
#     figures beside DPDK's rte_malloc/rte_free as well as glibc (so
#     librte_eal is installed, its EAL starts without huge pages, and its
#     rte_free was seen to zero), and leaves no DPDK run directory behind;
#   - the pool files are gone afterwards.
# Exit status: 0 if every check passed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
BENCH=$BUILD/bin/l1bench
fail=0
. "$ROOT/tests/sh/testlib.sh"
dir=$(mktemp -d /dev/shm/l1bench.XXXXXX)
out=$(mktemp /tmp/l1bench.XXXXXX)
trap 'rm -rf "$dir" "$out" "$out.ideal"' EXIT

# judge MODE FILE...: the checks on l1bench's --json lines (one parser and
# one "ok"/"FAIL" printer for both scenarios); exit 1 if one failed.
judge=$(cat <<'PY'
import json, sys
def lines(path):
    return [json.loads(l) for l in map(str.strip, open(path)) if l.startswith("{")]
def rows(path):
    return {o["metric"]: o for o in lines(path) if "metric" in o}
fails = 0
def check(name, ok):
    global fails
    print(("ok   " if ok else "FAIL ") + name)
    fails += not ok
mode = sys.argv[1]
if mode == "kv":
    on, ideal = rows(sys.argv[2]), rows(sys.argv[3])
    for w in ("fresh", "churned"):
        m = on.get("utilisation at first OOM, %s, zeroing on" % w)
        i = ideal.get("utilisation at first OOM, %s, bytes alone" % w)
        check("%s utilisation and its bytes-alone baseline reported" % w, m is not None and i is not None)
        if m and i:
            check("%s: the baseline is the ideal pass's figure (%s = %s)" % (w, m["baseline_value"], i["value"]),
                  abs(m["baseline_value"] - i["value"]) < 1e-9)
            check("%s: 0 < utilisation <= 1 (%s)" % (w, m["value"]), 0 < m["value"] <= 1)
    m = on.get("utilisation at first OOM, fresh, zeroing on")
    if m:
        check("fresh: the pool does not pass bytes alone (%s <= %s)" % (m["value"], m["baseline_value"]),
              m["value"] <= m["baseline_value"] + 1e-9)
    p = on.get("memcheck problems after the trace, zeroing on")
    check("memcheck after the trace: 0 problems", p is not None and p["value"] == 0)
    shares = [on.get("share of zeroed bytes: " + k) for k in
              ("allocating threads", "freeing threads (small)", "engine")]
    check("shares of zeroed bytes add up to 1",
          all(shares) and abs(sum(s["value"] for s in shares) - 1) < 1e-3)
    z = on.get("zeroing that 0.5x glibc's allocations/s takes")
    check("zeroing bound: both figures positive",
          z is not None and z["value"] > 0 and z.get("baseline_value", 0) > 0)
else:
    found = list(rows(sys.argv[2]).values())
    notes = [o["note"] for o in lines(sys.argv[2]) if "note" in o]
    glibc = [r for r in found if r.get("baseline") == "aligned_alloc+memset+free"]
    dpdk = [r for r in found if r.get("baseline", "").startswith("rte_malloc")]
    check("sustain: figures beside glibc (%d)" % len(glibc), len(glibc) >= 1)
    check("sustain: as many beside DPDK (%d)" % len(dpdk), len(dpdk) == len(glibc))
    check("sustain: every figure and baseline positive",
          all(r["value"] > 0 and r["baseline_value"] > 0 for r in found))
    bad = [n for n in notes if "no DPDK baseline" in n]
    check("sustain: no 'no DPDK baseline' note%s" % (": " + bad[0] if bad else ""), not bad)
sys.exit(1 if fails else 0)
PY
)

L1BENCH_KV_ONLY=on "$BENCH" --json --quick --allow-shm --dir "$dir" kv >"$out" 2>&1
check "l1bench kv (zeroing on) exits 0" [ $? -eq 0 ]
L1BENCH_KV_ONLY=ideal "$BENCH" --json --quick --allow-shm --dir "$dir" kv >"$out.ideal" 2>&1
check "l1bench kv (bytes alone) exits 0" [ $? -eq 0 ]
python3 -c "$judge" kv "$out" "$out.ideal" || fail=1
dpdk_before=$(ls -A /var/run/dpdk 2>/dev/null; echo end)
L1BENCH_SUSTAIN_ONLY=live "$BENCH" --json --quick --iters 6400 --allow-shm --dir "$dir" \
	sustain >"$out" 2>&1
check "l1bench sustain (16 384 live) exits 0" [ $? -eq 0 ]
python3 -c "$judge" sustain "$out" || fail=1
dpdk_after=$(ls -A /var/run/dpdk 2>/dev/null; echo end)
check "no DPDK run directory left behind" [ "$dpdk_before" = "$dpdk_after" ]
left=$(ls -A "$dir")
check "no pool files left in $dir" [ -z "$left" ]
exit $fail
