/*
 * zclaim.h - the one claim on a dirty-table entry that every thread which
 * zeroes makes before its first byte, for the two leaf files that zero
 * beside the engine: zhelp.c (an allocating thread, help at allocate) and
 * zfree.c (a freeing thread, zeroing at free).  The engine makes the same
 * claim in release.c (l1__zero_still_mine) and gc respects it (gc.c).
 *
 * An entry's zeroer_client word (format.h) holds the client tag of the
 * engine it is queued to; a claim swaps the bare tag for tag |
 * L1_ZEROER_WRITING with a compare-and-swap, so exactly one thread writes
 * and releases the entry.  Also here: the pool-wide note that an
 * allocation found only dirty memory (zero_pressure_ns in the header, read
 * and written with atomics and no lock), which sends frees to zero what the
 * engine cannot keep up with.
 */
#ifndef L1_ZCLAIM_H
#define L1_ZCLAIM_H

#include "internal.h"

#define L1_ZPRESSURE_NS 10000000000ull   /* an allocation found only dirty memory */
/* The pool-wide time (CLOCK_MONOTONIC ns) an allocation last found only dirty
 * memory (read and written with atomics, no lock; a stale value only shifts
 * who zeroes for a while). */
#define ZPRESSURE(a) (&(a)->h->zero_pressure_ns)

static inline void l1__zpressure_note(struct l1_arena *a)
{
	atomic_store_explicit(ZPRESSURE(a), l1__mono_ns(), memory_order_relaxed);
}

static inline int l1__zpressure_on(struct l1_arena *a)
{
	uint64_t t = atomic_load_explicit(ZPRESSURE(a), memory_order_relaxed);
	return t && l1__mono_ns() - t < L1_ZPRESSURE_NS;
}

/* An entry nobody has begun to write.  Whichever client's engine it is
 * queued to (or none, when an engine refused it), an allocating thread may
 * take it: under the lock it claims and releases the entry and takes its
 * blocks for its own object, so no engine writes them any more (its claim
 * fails on the new generation) and they are zeroed by their new owner. */
static inline int l1__zunclaimed(const struct l1_dirty_ent *e)
{
	return !(__atomic_load_n(&e->zeroer_client, __ATOMIC_ACQUIRE) & L1_ZEROER_WRITING);
}

/* The claim before the first byte (the same the engine makes): 1 if this
 * thread now zeroes the entry and nobody else may.  Own: only an entry of
 * this client (what the freeing thread keeps claimed after the lock);
 * else any unclaimed one, claimed in its zeroer's name (released before
 * the lock goes: its engine's claim then fails and it skips the job). */
static inline int l1__zclaim(struct l1_arena *a, struct l1_dirty_ent *e, int own)
{
	uint32_t v = own ? l1__client_tag(a)
			 : __atomic_load_n(&e->zeroer_client, __ATOMIC_ACQUIRE) & ~L1_ZEROER_WRITING;
	if (own && !v)
		return 0;
	return __atomic_compare_exchange_n(&e->zeroer_client, &v, v | L1_ZEROER_WRITING,
					   0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* The claim goes (the bytes are zero; the next owner may be anyone). */
static inline void l1__zunclaim(struct l1_arena *a, struct l1_dirty_ent *e)
{
	uint32_t me = l1__client_tag(a), w = me | L1_ZEROER_WRITING;
	__atomic_compare_exchange_n(&e->zeroer_client, &w, me, 0, __ATOMIC_RELEASE,
				    __ATOMIC_RELAXED);
}

#endif
