/*
 * zfree.c - zeroing at free, by the freeing thread, beside the engine
 * (zero.c) and the allocating threads (zhelp.c); and l1_arena_zero_split,
 * which says how many bytes each of the three zeroed.
 *
 * Zeroing at free: a freed extent no larger than zinline_max, or any while
 * allocations find only dirty memory (one did in the last 10 s, in any
 * process) and the engine's backlog (the pool's dirty bytes) is over
 * L1_ZBACKLOG: a burst of frees the engine absorbs costs the freer nothing,
 * a free rate it cannot follow is paid by the freers, not by allocations (on the
 * kv trace 4 MiB gave allocate p99 33 us and p999 0.6 ms, 16 MiB 31 us and
 * 2.7 ms, 64 MiB 0.3 ms and 4 ms, 0 (no engine) a third fewer allocations/s),
 * is cleared by the freeing thread: picked under the lock (it stays in the
 * table, bits taken, never queued), cleared with memset after the lock is
 * dropped and handed back L1_ZINLINE_STEP at a time, the lock taken after
 * each step (claimed all along, so gc never takes it over from a freer that
 * stops meanwhile; if the lock cannot be had, the claims on the rest go and
 * the engine zeroes it once more and releases it).  One io_uring read costs
 * more than memset of a few pages, on one CPU the engine only competes with
 * the application, and a backlog the engine cannot clear would make
 * allocations zero instead: so frees pay for what they free beyond what
 * the engine keeps up with.  zinline_max is L1_ZINLINE_SMALL, or
 * L1_ZINLINE_ONECPU while this process may run on one CPU only (looked at
 * every 100 ms).  L1ARENA_ZINLINE=bytes and L1ARENA_ZBACKLOG=bytes override.
 * The rule is per extent: a free of many objects that lie apart (each an
 * extent) sorts its list before it fills (alloc.c), so up to
 * L1_ZQ_MAX of them are zeroed here and the rest by the engine.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "zclaim.h"

#define L1_ZINLINE_SMALL (64ull << 10)
#define L1_ZINLINE_ONECPU (4ull << 20)
#define L1_ZINLINE_RECHECK_NS 100000000ull
#define L1_ZBACKLOG (4ull << 20)         /* the engine's backlog: 1-2 ms of memset */
#define L1_ZINLINE_STEP (4ull << 20)     /* zeroed at free, handed back this often */

/* Under the lock: the two limits of zeroing at free, zinline_max and the
 * engine's backlog beyond which a free zeroes its own extent, looked at
 * again (the environment, the CPUs this process may run on) every 100 ms,
 * not on every free. */
static void zinline_limits(struct l1_arena *a, uint64_t *max, uint64_t *backlog)
{
	const char *env;
	uint64_t now = l1__mono_ns();
	if (!a->zinline_checked || now - a->zinline_checked >= L1_ZINLINE_RECHECK_NS) {
		a->zinline_checked = now;
		if ((env = getenv("L1ARENA_ZINLINE")) && *env) {
			a->zinline_max = strtoull(env, NULL, 0);
		} else {
			cpu_set_t set;
			int one = sched_getaffinity(0, sizeof set, &set) == 0 &&
				  CPU_COUNT(&set) == 1;
			a->zinline_max = one ? L1_ZINLINE_ONECPU : L1_ZINLINE_SMALL;
		}
		env = getenv("L1ARENA_ZBACKLOG");
		a->zbacklog = env && *env ? strtoull(env, NULL, 0) : L1_ZBACKLOG;
	}
	*max = a->zinline_max;
	*backlog = a->zbacklog;
}

/* Under the lock: the extents this free zeroes itself go from q to iq (at
 * most L1_ZQ_MAX in all), claimed; they stay in the table, never queued.
 * The rest of q goes to the engine, and q is empty after. */
void l1__zero_at_free(struct l1_arena *a, struct l1_zero_extent *q, uint32_t *nq,
		      struct l1_zero_extent *iq, uint32_t *niq)
{
	struct l1_dirty_ent *e;
	uint32_t k = 0;
	uint64_t max, backlog;
	zinline_limits(a, &max, &backlog);
	int pressure = *nq && l1__zpressure_on(a);
	for (uint32_t i = 0; i < *nq; i++) {
		if ((q[i].slot & L1_ZX_TABLE) && *niq < L1_ZQ_MAX &&
		    (q[i].len <= max ||
		     (pressure && atomic_load(&a->h->dirty_bytes) - q[i].len > backlog)) &&
		    (e = l1__dirty_of(a, q[i].slot, q[i].gen)) && l1__zclaim(a, e, 1)) {
			iq[(*niq)++] = q[i];
			continue;
		}
		q[k++] = q[i];
	}
	l1__zero_queue(a, q, k);
	*nq = 0;
}

/* The lock could not be had: the claims on what is left go, and the engine
 * zeroes it (again) and releases it; the first extent from `head` on. */
static void inline_give_up(struct l1_arena *a, const struct l1_zero_extent *iq, uint32_t n,
			   uint64_t head)
{
	struct l1_zero_extent rest[L1_ZQ_MAX];
	for (uint32_t i = 0; i < n; i++) {
		struct l1_dirty_ent *e = &a->dirty[iq[i].slot & ~L1_ZX_TABLE];
		if (__atomic_load_n(&e->gen, __ATOMIC_ACQUIRE) == iq[i].gen)
			l1__zunclaim(a, e);
		rest[i] = iq[i];
	}
	rest[0].ptr = (uint8_t *)rest[0].ptr + head;
	rest[0].len -= head;
	if (a->zero)
		(void)l1_zero_submit(a->zero, rest, n);   /* refused: dirty until this client goes */
}

/* After the lock: zeroes them L1_ZINLINE_STEP at a time, taking the lock
 * after each step to hand back what is zero (whole extents, and the head of
 * a longer one: l1__dirty_release_head), so an allocation waiting for the
 * memory of a large eviction gets it step by step, not after the last byte.
 * Releases go by cookie: an entry that a repair took meanwhile is left
 * alone, and the rest of it is not written.  If the lock cannot be had,
 * the rest goes to the engine. */
void l1__zero_inline_finish(struct l1_arena *a, const struct l1_zero_extent *iq, uint32_t n)
{
	uint32_t i = 0;
	uint64_t head = 0;              /* of iq[i]: zeroed and handed back */
	while (i < n) {
		uint32_t j = i;
		uint64_t upto = head, budget = L1_ZINLINE_STEP, bytes = 0;
		for (;;) {              /* the rest of iq[i], then whole extents */
			uint64_t k = iq[j].len - upto < budget ? iq[j].len - upto : budget;
			memset((uint8_t *)iq[j].ptr + upto, 0, k);
			budget -= k;
			upto += k;
			if (upto < iq[j].len || j + 1 == n || !budget)
				break;
			j++;
			upto = 0;
		}
		if (l1__lock(a)) {
			inline_give_up(a, iq + i, n - i, head);
			return;
		}
		for (uint32_t k = i; k < j; k++)
			bytes += l1__dirty_release(a, iq[k].slot, iq[k].gen);
		if (upto == iq[j].len)
			bytes += l1__dirty_release(a, iq[j].slot, iq[j].gen);
		else if (l1__dirty_of(a, iq[j].slot, iq[j].gen))
			bytes += l1__dirty_release_head(a, iq[j].slot, iq[j].gen,
							upto - (j == i ? head : 0));
		else
			upto = iq[j].len;       /* a repair took it: the rest is not ours */
		l1__ctr_add(&a->h->zeroed_bytes, (int64_t)bytes);
		l1__unlock(a);
		atomic_fetch_add_explicit(&a->inline_bytes, bytes, memory_order_relaxed);
		if (a->test_hook)
			a->test_hook(a, L1_HOOK_ZINLINE_STEP);
		if (upto == iq[j].len) {
			i = j + 1;
			head = 0;
		} else {
			i = j;
			head = upto;
		}
	}
}

int l1_arena_zero_split(struct l1_arena *a, struct l1_zero_split *out)
{
	struct l1_zero_stats st;
	if (!a || !out)
		return l1__err(-EINVAL, "NULL argument");
	l1_zero_get_stats(a->zero, &st);
	out->by_allocate = atomic_load(&a->help_bytes);
	out->by_free = atomic_load(&a->inline_bytes);
	out->by_engine = st.zeroed_bytes;
	out->engine_skipped = st.skipped_bytes;
	return 0;
}
