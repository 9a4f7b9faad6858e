/*
 * zhelp.c - zeroing by the threads that allocate, beside the engine
 * (zero.c), so that no allocation waits behind an engine's queue.
 *
 * Help at allocate: when no clean run is long enough, allocate looks for a
 * dirty-extent entry nobody has begun to write (queued to this process's
 * engine or to another's: a writer must not wait for a busy neighbour's
 * queue) which, with the free blocks on either side of it, holds the run
 * it needs; it claims the entry under the pool lock, keeps its blocks for
 * the new object, hands the rest of the entry back to the table as new
 * entries (queued to this engine), and after the lock is dropped clears
 * exactly the dirty bytes of its object with memset.  A process that dies
 * in between leaves an ALLOCATED object of a dead owner, which gc zeroes
 * like any other.
 *
 * Who zeroes an entry is decided by its zeroer_client word in the pool
 * (format.h), with one claim for everyone: before the first byte, the
 * engine (release.c, l1__zero_still_mine), an allocating thread (help_one)
 * and a freeing thread (l1__zero_at_free) each swap the bare client tag
 * for tag | L1_ZEROER_WRITING; gc's takeover swaps the bare tag for its own
 * (and leaves a claimed extent of a live client alone).  So exactly one of
 * them wins, writes and releases: an engine whose claim fails gives its job
 * up unwritten, and the entry's gen (the cookie) makes a late release of an
 * older use a no-op.  A helper takes any entry nobody claimed yet
 * (l1__zunclaimed), claiming it in its zeroer's name; the freeing thread
 * only its own.
 *
 * Zeroing at free, by the freeing thread, is zfree.c; the claim both
 * make, zclaim.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zclaim.h"

#define HELP_TRIES 4

static uint64_t overlap(uint64_t s, uint64_t n, uint64_t b, uint64_t k)
{
	uint64_t lo = s > b ? s : b, hi = s + n < b + k ? s + n : b + k;
	return hi > lo ? hi - lo : 0;
}

/* The entry (and where in its run) that gives n blocks with the fewest
 * dirty ones, best fit among equals (fit_first: the smallest run, then the
 * fewest dirty blocks; its length in *run); -1 if none. */
static int64_t help_pick(struct l1_arena *a, uint64_t n, int fit_first, uint64_t *start,
			 uint64_t *run, uint64_t *dirty)
{
	struct l1_hdr *h = a->h;
	uint64_t step = h->grow_step / h->block_size;
	uint64_t limit = l1__blocks_usable(h);
	uint64_t best_dirty = UINT64_MAX, best_run = UINT64_MAX;
	int64_t best = -1;
	/* entries in use cluster at low indices (the free stack hands out the
	 * lowest first): stop after the last one */
	uint64_t left = atomic_load(&h->dirty_extents);
	for (uint64_t i = 0; i < h->max_dirty && left; i++) {
		struct l1_dirty_ent *e = &a->dirty[i];
		uint64_t b, k;
		if (e->offset)
			left--;
		if (!e->offset || !l1__zunclaimed(e) || !l1__extent_ok(a, e->offset, e->size))
			continue;
		l1__extent_blocks(a, e->offset, e->size, &b, &k);
		uint64_t s0 = b / step * step, s1 = s0 + step < limit ? s0 + step : limit;
		uint64_t lo = l1__bm_run_start(a, b, s0), hi = l1__bm_run_end(a, b + k, s1);
		if (hi - lo < n)
			continue;
		uint64_t dl = overlap(lo, n, b, k), dr = overlap(hi - n, n, b, k);
		uint64_t s = dl <= dr ? lo : hi - n, d = dl <= dr ? dl : dr;
		int better = fit_first ? hi - lo < best_run || (hi - lo == best_run && d < best_dirty)
				       : d < best_dirty || (d == best_dirty && hi - lo < best_run);
		if (better) {
			best = (int64_t)i;
			best_dirty = d;
			best_run = hi - lo;
			*start = s;
		}
	}
	*run = best_run;
	*dirty = best_dirty;
	return best;
}

/* Entries the table can still take (the caller's own entry comes back). */
static int table_room(struct l1_arena *a, uint32_t need)
{
	struct l1_hdr *h = a->h;
	if (a->dirty_limit && atomic_load(&h->dirty_extents) + need > a->dirty_limit + 1)
		return 0;
	return h->dirty_top + 1 >= need;
}

/* Back to the table (bits set, queued at the end of the allocation). */
static int help_requeue(struct l1_arena *a, struct l1_help *hp, uint64_t b, uint64_t n)
{
	struct l1_zero_extent x;
	uint64_t bs = a->h->block_size, off = a->h->data_off + b * bs;
	l1__bm_set(a, b, n);
	if (l1__dirty_add(a, off, n * bs, &x) < 0)
		return -1;
	hp->rq[hp->nrq++] = x;
	return 0;
}

/* Claims n blocks that take one dirty entry (and free blocks beside it):
 * the start, or -1.  The entry's dirty part in the run goes to hp->p. */
static int64_t help_one(struct l1_arena *a, uint64_t n, struct l1_help *hp, uint64_t max_run)
{
	struct l1_hdr *h = a->h;
	uint64_t s = 0, b, k, run, dirty;
	/* no client tag (a handle with no slot): what it would give back
	 * would have no zeroer; it waits like before */
	if (hp->np == L1_HELP_MAX || hp->nrq + 2 > L1_HELP_MAX * 2 || !l1__client_tag(a))
		return -1;
	for (int t = 0; t < HELP_TRIES; t++) {
		l1__fin_release(a);     /* what the engine finished: not for helpers */
		int64_t i = help_pick(a, n, max_run != UINT64_MAX, &s, &run, &dirty);
		if (i < 0 || run >= max_run)
			return -1;
		if (!dirty) {
			/* the window misses the entry: the free blocks beside it
			 * hold the run (what the engine finished just now was
			 * released above, or the caller looked for a batch in
			 * one run before looking for clean runs): clean, and no
			 * piece, for a piece outside the entry has no bytes */
			l1__bm_set(a, s, n);
			return (int64_t)s;
		}
		struct l1_dirty_ent *e = &a->dirty[i];
		l1__extent_blocks(a, e->offset, e->size, &b, &k);
		uint32_t rem = (s > b) + (s + n < b + k);
		if (!table_room(a, rem))
			return -1;
		uint32_t gen = e->gen;
		if (!l1__zclaim(a, e, 0))
			continue;       /* an engine started on it just now */
		/* finished by the engine meanwhile (its claim gone, on the
		 * ring): released now, clean, not zeroed twice */
		l1__fin_release(a);
		if (!l1__dirty_of(a, (uint32_t)i | L1_ZX_TABLE, gen))
			continue;
		l1__dirty_release(a, (uint32_t)i | L1_ZX_TABLE, e->gen);
		l1__bm_set(a, s, n);
		if ((s > b && help_requeue(a, hp, b, s - b) < 0) ||
		    (s + n < b + k && help_requeue(a, hp, s + n, b + k - s - n) < 0))
			return -1;      /* cannot happen: table_room said so */
		uint64_t lo = s > b ? s : b;
		hp->p[hp->np++] = (struct l1_help_piece){ h->data_off + lo * h->block_size,
							  overlap(s, n, b, k) * h->block_size };
		return (int64_t)s;
	}
	return -1;
}

/* Undoes a failed batch: runs free again, dirty pieces back to the table
 * (or zeroed here, under the lock, if the table is full). */
static void help_undo(struct l1_arena *a, struct l1_help *hp, uint64_t nblk, uint32_t n,
		      const uint64_t *starts)
{
	struct l1_hdr *h = a->h;
	for (uint32_t i = 0; i < n; i++)
		l1__bm_clear(a, starts[i], nblk);
	for (uint32_t i = 0; i < hp->np; i++) {
		uint64_t b = (hp->p[i].off - h->data_off) / h->block_size;
		uint64_t k = hp->p[i].len / h->block_size;
		if (help_requeue(a, hp, b, k) < 0) {
			memset(a->base + hp->p[i].off, 0, hp->p[i].len);
			l1__bm_clear(a, b, k);
		}
	}
	hp->np = 0;
}

/* The caller's record of what it helps with, made when a help first needs
 * it (about 8 KiB: not on the path of an allocation that never helps); the
 * caller frees it. */
static struct l1_help *help_rec(struct l1_help **hpp)
{
	if (!*hpp)
		*hpp = malloc(sizeof **hpp);
	if (*hpp)
		(*hpp)->np = (*hpp)->nrq = 0;
	return *hpp;
}

int l1__help_claim(struct l1_arena *a, uint64_t nblk, uint32_t count, uint64_t *starts,
		   struct l1_help **hpp)
{
	struct l1_hdr *h = a->h;
	uint64_t step = h->grow_step / h->block_size;
	uint64_t limit = l1__blocks_usable(h);
	struct l1_help *hp;
	l1__zpressure_note(a);
	if (!a->dirty || !a->zero || !(hp = help_rec(hpp)))
		return -ENOMEM;
	/* the batch in one run, as a clean claim would lay it out */
	if (count > 1 && nblk * count <= step) {
		int64_t s = help_one(a, nblk * count, hp, UINT64_MAX);
		if (s >= 0) {
			for (uint32_t i = 0; i < count; i++)
				starts[i] = (uint64_t)s + i * nblk;
			return 0;
		}
	}
	for (uint32_t i = 0; i < count; i++) {
		int64_t s = l1__bm_find(a, nblk, 0, limit);
		if (s >= 0)
			l1__bm_set(a, (uint64_t)s, nblk);
		else
			s = help_one(a, nblk, hp, UINT64_MAX);
		if (s < 0) {
			help_undo(a, hp, nblk, i, starts);
			return -ENOMEM;
		}
		starts[i] = (uint64_t)s;
	}
	return 0;
}

/* Before a clean claim of a large batch, while the engine is behind: if the
 * best clean run would leave a rest too small for another such batch and a
 * dirty entry with the free blocks beside it is a tighter fit, take that
 * (and zero its bytes) rather than split the run: placement then is what it would be with no zeroing at all,
 * and the pool does not fragment around extents waiting in the queue.
 * 0 (placed), or -EAGAIN (claim clean as usual). */
int l1__help_prefer(struct l1_arena *a, uint64_t nblk, uint32_t count, uint64_t *starts,
		    struct l1_help **hpp)
{
	uint64_t clean_run = UINT64_MAX;
	struct l1_help *hp;
	if (!a->dirty || !a->zero || !atomic_load(&a->h->dirty_bytes) ||
	    !l1__place_large(a, nblk, count))
		return -EAGAIN;
	/* a clean run that fits exactly, or leaves a rest as large as the batch
	 * (taking its front splits nothing another batch like it needs) */
	if (l1__place_best(a, nblk * count, &clean_run) >= 0 &&
	    (clean_run == nblk * count || clean_run >= 2 * nblk * count))
		return -EAGAIN;
	if (!(hp = help_rec(hpp)))
		return -EAGAIN;
	int64_t s = help_one(a, nblk * count, hp, clean_run);
	if (s < 0)
		return -EAGAIN;
	l1__zpressure_note(a);       /* the tight runs are dirty: frees, keep up */
	for (uint32_t i = 0; i < count; i++)
		starts[i] = (uint64_t)s + i * nblk;
	return 0;
}

/* Under the lock, after the records are written (or a help failed):
 * counters, the remainders to the engine.  hp may be NULL (no help made). */
void l1__help_commit(struct l1_arena *a, struct l1_help *hp)
{
	uint64_t bytes = 0;
	if (!hp)
		return;
	for (uint32_t i = 0; i < hp->np; i++)
		bytes += hp->p[i].len;
	l1__ctr_add(&a->h->zeroed_bytes, (int64_t)bytes);
	uint32_t k = 0;         /* remainders a later object of the batch took */
	for (uint32_t i = 0; i < hp->nrq; i++)
		if (l1__dirty_of(a, hp->rq[i].slot, hp->rq[i].gen))
			hp->rq[k++] = hp->rq[i];
	l1__zero_queue(a, hp->rq, k);
	hp->nrq = 0;
}

/* After the lock: the allocating thread clears what it took dirty. */
void l1__help_zero(struct l1_arena *a, struct l1_help *hp)
{
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < hp->np; i++) {
		memset(a->base + hp->p[i].off, 0, hp->p[i].len);
		bytes += hp->p[i].len;
	}
	atomic_fetch_add_explicit(&a->help_bytes, bytes, memory_order_relaxed);
	hp->np = 0;
}
