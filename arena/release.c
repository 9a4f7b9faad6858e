/*
 * release.c - the end of an object's life.  A record leaves the live states
 * through l1__rec_retire (under the pool lock, holds already 0).  With
 * zero-on-free its record goes back to the free stack at once and its bytes
 * move to the dirty-extent table (dirty.c), bits still taken, joining the
 * entry of the object freed just before it when they lie back to back;
 * when the table is full the record itself stays DIRTY.  Either way the
 * extent is queued for this process's zeroing engine.  Without zero-on-free
 * the bits are released at once.
 *
 * When the engine has zeroed an extent it does not take the pool lock: it
 * pushes the extent's cookie (slot or table entry, generation) onto this
 * process's finished ring, a single-producer ring (the engine thread writes
 * fin_tail; pops happen only under the pool lock, so one consumer at a
 * time).  Whoever in this process takes the pool lock next releases what is
 * on it (l1__fin_release: the entry or DIRTY record must still be the one
 * the cookie names; then bits cleared and entry or record free).  So a
 * thread that allocates and frees releases its own zeroed memory on lines
 * it already owns, and never waits for a lock the engine holds.  When
 * nobody in this process takes the lock for a while (lock_seq does not move
 * across an engine nap), or the ring is full, the engine takes the lock
 * itself and releases; other processes waiting for the memory see it
 * within a couple of milliseconds.  Everything on the ring is already zero,
 * so releasing it late is never unsafe; a process that dies leaves its
 * extents dirty, and gc re-zeroes them; so does another process's gc when
 * this one stops for longer than the lease (client.c), and then this
 * engine writes those extents no more (l1__zero_still_mine, asked before
 * each write) and cannot release them (their generation moved on).
 */
#include "internal.h"

/* Under the lock.  Extents the engine refuses are left DIRTY with no zeroer,
 * so the next gc (in any process) takes them over. */
void l1__zero_queue(struct l1_arena *a, const struct l1_zero_extent *q, uint32_t n)
{
	uint32_t me = l1__client_tag(a);
	if (!n)
		return;
	if (a->zero && l1_zero_submit(a->zero, q, n) == 0) {
		l1__client_beat(a);     /* the lease of these extents starts now */
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct l1_dirty_ent *e = l1__dirty_of(a, q[i].slot, q[i].gen);
		if (e && (__atomic_load_n(&e->zeroer_client, __ATOMIC_RELAXED) & ~L1_ZEROER_WRITING) == me) {
			e->zeroer_pid = 0;
			__atomic_store_n(&e->zeroer_client, 0, __ATOMIC_RELAXED);
			continue;
		}
		if (q[i].slot >= a->h->max_objects)
			continue;
		struct l1_rec *r = &a->recs[q[i].slot];
		if (__atomic_load_n(&r->gen, __ATOMIC_RELAXED) == q[i].gen &&
		    (__atomic_load_n(&r->zeroer_client, __ATOMIC_RELAXED) & ~L1_ZEROER_WRITING) == me) {
			r->zeroer_pid = 0;
			__atomic_store_n(&r->zeroer_client, 0, __ATOMIC_RELAXED);
		}
	}
}

/* Engine thread, before it writes an extent (and before each rewrite after
 * a short read): does the cookie still name an extent this client zeroes?
 * Not once another engine took it over (a new generation) or it was
 * released.  The first yes claims the extent: L1_ZEROER_WRITING is set
 * with a compare-and-swap from the bare tag, the same claim an allocating
 * or freeing thread makes when it zeroes the extent itself (zhelp.c, zfree.c), and
 * gc's takeover swaps the zeroer first; so of engine, helper and takeover
 * exactly one wins, and only the winner writes and releases.  From then on
 * no other engine takes it over while this client lives, since a write
 * issued now may land after a stop of any length; later calls only confirm
 * the claim.  Without the pool lock: the fields are written with atomic
 * operations under it.  Also the engine's sign of life for the lease. */
/* The generation and zeroer fields of the extent a cookie names; 0 if the
 * cookie points nowhere. */
static int zeroer_fields(struct l1_arena *a, const struct l1_zero_extent *x, uint32_t **gen,
			 uint32_t **who)
{
	if (x->slot & L1_ZX_TABLE) {
		uint32_t i = x->slot & ~L1_ZX_TABLE;
		if (!a->dirty || i >= a->h->max_dirty)
			return 0;
		*gen = &a->dirty[i].gen;
		*who = &a->dirty[i].zeroer_client;
		return 1;
	}
	if (x->slot >= a->h->max_objects)
		return 0;
	*gen = &a->recs[x->slot].gen;
	*who = &a->recs[x->slot].zeroer_client;
	return 1;
}

int l1__zero_still_mine(void *ctx, const struct l1_zero_extent *x, int first)
{
	struct l1_arena *a = ctx;
	uint32_t me = l1__client_tag(a), *gen, *who;
	if (a->test_hook)
		a->test_hook(a, L1_HOOK_ZERO_ISSUE);
	l1__client_beat(a);
	if (!zeroer_fields(a, x, &gen, &who))
		return 0;
	uint32_t w = me;
	if (!me || __atomic_load_n(gen, __ATOMIC_ACQUIRE) != x->gen)
		return 0;
	if (!first)     /* only this engine sets the bit with this tag before it writes */
		return __atomic_load_n(who, __ATOMIC_ACQUIRE) == (me | L1_ZEROER_WRITING) &&
		       __atomic_load_n(gen, __ATOMIC_ACQUIRE) == x->gen;
	if (!__atomic_compare_exchange_n(who, &w, me | L1_ZEROER_WRITING, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return 0;       /* a thread of this process zeroes it, or gc took it */
	if (__atomic_load_n(gen, __ATOMIC_ACQUIRE) == x->gen) {
		if (a->test_hook)
			a->test_hook(a, L1_HOOK_ZERO_CLAIMED);
		return 1;
	}
	/* released and reused (by this client) between the two looks: not
	 * the extent of the cookie; the claim goes back */
	w = me | L1_ZEROER_WRITING;
	__atomic_compare_exchange_n(who, &w, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
	return 0;
}

/* Under the lock: appends x to the caller's queue, handing a full queue to
 * the engine. */
void l1__zero_push(struct l1_arena *a, struct l1_zero_extent *q, uint32_t *nq,
		   struct l1_zero_extent x)
{
	q[(*nq)++] = x;
	if (*nq == L1_ZQ_MAX) {
		l1__zero_queue(a, q, *nq);
		*nq = 0;
	}
}

void l1__rec_retire(struct l1_arena *a, uint32_t slot, struct l1_zero_extent *q,
		    uint32_t *nq)
{
	struct l1_rec *r = &a->recs[slot];
	uint64_t b, n;
	if (!l1__rec_geometry_ok(a, r))
		return;         /* damaged record: no bits or bytes to release; repair drops it */
	l1__key_unlink(a, slot);
	if (a->h->zero_on_free && a->zero) {
		/* the record goes back at once (the next allocation finds it
		 * in cache); the bytes wait in the dirty-extent table, bits
		 * taken.  An object right after the last one queued joins its
		 * entry (a batch allocated together is freed as one run) */
		struct l1_zero_extent x;
		int joined = *nq && l1__dirty_extend(a, &q[*nq - 1], r->offset, r->size) == 0;
		if (joined || l1__dirty_add(a, r->offset, r->size, &x) == 0) {
			l1__rec_set_state(a, r, L1_STATE_FREE);
			l1__slot_push(a, slot);
			if (!joined)
				l1__zero_push(a, q, nq, x);
			return;
		}
		/* the table is full: the record stays DIRTY */
		r->zeroer_pid = a->pid;
		r->zeroer_start = a->start;
		__atomic_store_n(&r->zeroer_client, l1__client_tag(a), __ATOMIC_RELAXED);
		l1__rec_set_state(a, r, L1_STATE_DIRTY);
		l1__zero_push(a, q, nq,
			      (struct l1_zero_extent){ slot, r->gen, a->base + r->offset, r->size });
		return;
	}
	if (a->h->zero_on_free) {       /* no engine here: leave it for gc */
		r->zeroer_pid = 0;
		r->zeroer_start = 0;
		__atomic_store_n(&r->zeroer_client, 0, __ATOMIC_RELAXED);
		l1__rec_set_state(a, r, L1_STATE_DIRTY);
		return;
	}
	l1__extent_blocks(a, r->offset, r->size, &b, &n);
	l1__bm_clear(a, b, n);
	l1__rec_set_state(a, r, L1_STATE_FREE);
	l1__slot_push(a, slot);
}

/* Under the lock: releases what the engine finished. */
void l1__fin_release(struct l1_arena *a)
{
	uint64_t head = atomic_load_explicit(&a->fin_head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&a->fin_tail, memory_order_acquire);
	uint64_t bytes = 0;
	if (head == tail)
		return;
	for (; head != tail; head++) {
		const struct l1_fin_ent *e = &a->fin[head % L1_FIN_CAP];
		if (e->slot & L1_ZX_TABLE) {
			if (a->test_hook && l1__dirty_of(a, e->slot, e->gen))
				a->test_hook(a, L1_HOOK_ZERO_DONE);
			bytes += l1__dirty_release(a, e->slot, e->gen);
			continue;
		}
		if (e->slot >= a->h->max_objects)
			continue;
		struct l1_rec *r = &a->recs[e->slot];
		if (r->gen != e->gen ||
		    atomic_load_explicit(&r->state, memory_order_relaxed) != L1_STATE_DIRTY ||
		    !l1__rec_geometry_ok(a, r))
			continue;       /* released already, or repaired away */
		if (a->test_hook)
			a->test_hook(a, L1_HOOK_ZERO_DONE);
		uint64_t b, n;
		l1__extent_blocks(a, r->offset, r->size, &b, &n);
		l1__bm_clear(a, b, n);
		r->zeroer_pid = 0;
		r->zeroer_start = 0;
		__atomic_store_n(&r->zeroer_client, 0, __ATOMIC_RELAXED);
		l1__rec_set_state(a, r, L1_STATE_FREE);
		l1__slot_push(a, e->slot);
		bytes += r->size;
	}
	atomic_store_explicit(&a->fin_head, head, memory_order_release);
	l1__ctr_add(&a->h->zeroed_bytes, (int64_t)bytes);
}

static int fin_pending(struct l1_arena *a)
{
	return atomic_load_explicit(&a->fin_head, memory_order_acquire) !=
	       atomic_load_explicit(&a->fin_tail, memory_order_relaxed);
}

/* Takes the lock only to release the ring (l1__lock does). */
void l1__fin_release_now(struct l1_arena *a)
{
	if (a->fin && fin_pending(a) && l1__lock(a) == 0)
		l1__unlock(a);
}

/* Engine thread: true when nobody in this process took the pool lock since
 * the last look (so nobody will release the ring soon). */
static int owner_quiet(struct l1_arena *a)
{
	uint64_t seq = atomic_load_explicit(&a->lock_seq, memory_order_relaxed);
	int quiet = seq == a->fin_seen_seq;
	a->fin_seen_seq = seq;
	return quiet;
}

/* Engine thread: extents whose bytes are all zero now.  Their claims go
 * (no write of this engine can land in them any more), so if this client
 * stops before it releases them, another engine may take them over after
 * the lease (and zero them once more, harmlessly). */
void l1__zero_done(void *ctx, const struct l1_zero_extent *e, uint32_t n)
{
	struct l1_arena *a = ctx;
	uint32_t me = l1__client_tag(a), *gen, *who;
	uint64_t tail = atomic_load_explicit(&a->fin_tail, memory_order_relaxed);
	l1__client_beat(a);
	int stuck = 0;
	/* each claim goes right before its extent is published for release, so
	 * that an allocating thread (zhelp.c, of any process) rarely finds an extent
	 * finished but not yet on the ring (it would zero it again, harmlessly);
	 * all passed here were claimed by this engine (given-up jobs never
	 * are), so nobody else can have changed them meanwhile */
	for (uint32_t i = 0; i < n; i++) {
		uint32_t w = me | L1_ZEROER_WRITING;
		if (me && zeroer_fields(a, &e[i], &gen, &who) &&
		    __atomic_load_n(gen, __ATOMIC_ACQUIRE) == e[i].gen)
			__atomic_compare_exchange_n(who, &w, me, 0, __ATOMIC_RELEASE,
						    __ATOMIC_RELAXED);
		if (!stuck && tail - atomic_load_explicit(&a->fin_head, memory_order_acquire) ==
				      L1_FIN_CAP) {
			atomic_store_explicit(&a->fin_tail, tail, memory_order_release);
			l1__fin_release_now(a);
			stuck = tail - atomic_load_explicit(&a->fin_head, memory_order_acquire) ==
				L1_FIN_CAP;     /* lock unusable: left DIRTY for gc/repair */
		}
		if (stuck)
			continue;
		a->fin[tail % L1_FIN_CAP] = (struct l1_fin_ent){ e[i].slot, e[i].gen };
		tail++;
		atomic_store_explicit(&a->fin_tail, tail, memory_order_release);
	}
	/* busy engine, quiet owner: release every few milliseconds */
	uint64_t now = l1__mono_ns();
	if (now - a->fin_check_ns >= L1_FIN_BUSY_NS) {
		a->fin_check_ns = now;
		if (owner_quiet(a))
			l1__fin_release_now(a);
	}
	struct l1_zero_stats st;
	l1_zero_get_stats(a->zero, &st);
	uint64_t prev = atomic_exchange(&a->zero_busy_seen, st.busy_ns);
	if (st.busy_ns > prev)
		atomic_fetch_add_explicit(&a->h->zero_busy_ns, st.busy_ns - prev,
					  memory_order_relaxed);
}

/* Engine thread, nothing left to zero: releases the ring itself if nobody
 * in this process took the lock during the last nap; 1 = look again after
 * a nap. */
int l1__zero_idle(void *ctx)
{
	struct l1_arena *a = ctx;
	if (!fin_pending(a))
		return 0;
	if (!owner_quiet(a))
		return 1;
	l1__fin_release_now(a);
	return fin_pending(a);
}
