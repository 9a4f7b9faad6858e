/*
 * gc.c - reclaiming what dead clients left behind, and flush.  Liveness is
 * the kernel's (client.c): a client is dead when nobody holds the lock byte
 * of its slot, whatever namespace gc runs in and whatever /proc shows.  gc
 * works in one pass under the pool lock, asking the kernel once per slot:
 * for each dead client it drops the client slot and its holds; it reclaims
 * the unpublished objects of dead owners; and it takes over dirty extents
 * (DIRTY records and dirty-extent table entries alike, queued to this
 * process's engine) whose zeroer is dead, or alive but silent for longer
 * than the lease (a stopped process), unless a live record claims the same
 * bytes (damage: left to the repair).  A takeover bumps the extent's
 * generation, so the old zeroer's engine neither writes it any more (it
 * checks before each write) nor releases it.  Published objects survive
 * their writer.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

/* Under the lock: the blocks that live records hold.  A dirty extent that
 * overlaps one is damage (a record and a dirty extent claim the same
 * bytes): gc leaves it to the repair, which trusts the record, rather than
 * zero a live object's bytes.  NULL when out of memory (gc takes nothing). */
static uint64_t *live_blocks(struct l1_arena *a)
{
	struct l1_hdr *h = a->h;
	uint64_t *m = calloc(h->bitmap_words, 8);
	for (uint64_t i = 0; m && i < h->max_objects; i++) {
		struct l1_rec *r = &a->recs[i];
		uint32_t st = atomic_load_explicit(&r->state, memory_order_relaxed);
		if (st < L1_STATE_ALLOCATED || st > L1_STATE_DOOMED || st == L1_STATE_DIRTY ||
		    !l1__rec_geometry_ok(a, r))
			continue;
		uint64_t b, n;
		l1__extent_blocks(a, r->offset, r->size, &b, &n);
		for (uint64_t k = b; k < b + n; k++)
			m[k >> 6] |= 1ull << (k & 63);
	}
	return m;
}

/* An extent (geometry already checked) that shares no block with them. */
static int clear_of_live(struct l1_arena *a, const uint64_t *live, uint64_t off, uint64_t size)
{
	uint64_t b, n;
	l1__extent_blocks(a, off, size, &b, &n);
	for (uint64_t k = b; k < b + n; k++)
		if (live[k >> 6] & (1ull << (k & 63)))
			return 0;
	return 1;
}

struct take_ctx {
	struct l1_arena *a;
	struct l1_live *lv;
	uint64_t *live;                 /* built at the first candidate */
	int no_memory;
};

/* An extent whose zeroer (a client tag) is dead, none, or stalled past the
 * lease, and which no live record overlaps, may be taken over. */
static int may_take(struct take_ctx *t, uint32_t zeroer, uint64_t off, uint64_t size)
{
	struct l1_arena *a = t->a;
	uint32_t who = zeroer & ~L1_ZEROER_WRITING;
	if (who && who == l1__client_tag(a))
		return 0;
	/* one it began writing stays its own while it lives (format.h) */
	if (who && l1__live_tag(a, t->lv, who) &&
	    ((zeroer & L1_ZEROER_WRITING) || !l1__tag_stalled(a, who)))
		return 0;
	if (!t->live && !t->no_memory) {
		t->live = live_blocks(a);
		t->no_memory = !t->live;
	}
	return t->live && clear_of_live(a, t->live, off, size);
}

static int take_entry(void *ctx, const struct l1_dirty_ent *e)
{
	return may_take(ctx, __atomic_load_n(&e->zeroer_client, __ATOMIC_ACQUIRE), e->offset,
			e->size);
}

/* DIRTY records and dirty-table entries that may be taken over: to this
 * process's engine, each with a new generation (the old cookie is void).
 * Not by a handle without a client slot (a repair inside attach, before
 * the slot is taken; a tool attached while the lock was held): its tag is
 * 0, "nobody", so its own engine would refuse the extents as not its own
 * and report them done unwritten, under the new generation, and the next
 * locker would release them with their old bytes. */
static void take_dirty(struct take_ctx *t, struct l1_zero_extent *q, uint32_t *nq,
		       uint64_t *taken)
{
	struct l1_arena *a = t->a;
	if (!a->zero || !l1__client_tag(a))
		return;
	for (uint64_t i = 0; i < a->h->max_objects; i++) {
		struct l1_rec *rec = &a->recs[i];
		uint32_t seen = __atomic_load_n(&rec->zeroer_client, __ATOMIC_ACQUIRE);
		if (atomic_load_explicit(&rec->state, memory_order_relaxed) != L1_STATE_DIRTY ||
		    !l1__rec_geometry_ok(a, rec) ||
		    !may_take(t, seen, rec->offset, rec->size) ||
		    !l1__zeroer_seize(&rec->zeroer_client, seen, l1__client_tag(a)))
			continue;
		uint32_t gen = rec->gen + 1 ? rec->gen + 1 : 1;
		__atomic_store_n(&rec->gen, gen, __ATOMIC_RELEASE);
		rec->zeroer_pid = a->pid;
		rec->zeroer_start = a->start;
		l1__zero_push(a, q, nq, (struct l1_zero_extent){ (uint32_t)i, gen,
							      a->base + rec->offset, rec->size });
		if (taken)
			(*taken)++;
	}
	l1__dirty_takeover(a, take_entry, t, q, nq, taken);
}

/* Under the lock: a dead client's holds (retiring what they kept) and slot. */
static void drop_client(struct l1_arena *a, uint32_t slot, struct l1_zero_extent *q,
			uint32_t *nq, struct l1_gc_result *r0)
{
	struct l1_client *c = &a->clients[slot];
	uint32_t rel[64], nrel, tag = slot | c->gen << L1_CLIENT_BITS;
	do {
		r0->holds_dropped += l1__holds_drop_client(a, tag, rel, &nrel, 64);
		for (uint32_t k = 0; k < nrel; k++)
			if (atomic_load(&a->recs[rel[k]].state) == L1_STATE_DOOMED)
				l1__rec_retire(a, rel[k], q, nq);
	} while (nrel == 64);
	r0->clients_dropped += c->state == L1_CLIENT_LIVE;
	c->state = L1_CLIENT_FREE;
}

int l1_arena_gc(struct l1_arena *a, struct l1_gc_result *res)
{
	struct l1_gc_result r0 = { 0 };
	struct l1_zero_extent q[L1_ZQ_MAX];
	uint32_t nq = 0;
	int r = l1__writable(a, "run gc");
	if (r)
		return r;
	struct l1_live *lv = malloc(sizeof *lv);
	if (!lv)
		return l1__err(-ENOMEM, "out of process memory");
	l1__live_init(lv);
	if ((r = l1__lock(a)))
		goto out;
	struct l1_hdr *h = a->h;
	struct take_ctx tc = { a, lv, NULL, 0 };
	for (uint64_t i = 0; i < h->max_clients; i++)
		if (a->clients[i].state != L1_CLIENT_FREE && !l1__live_slot(a, lv, (uint32_t)i))
			drop_client(a, (uint32_t)i, q, &nq, &r0);
	l1__clients_recount(a);
	for (uint64_t i = 0; i < h->max_objects; i++) {
		struct l1_rec *rec = &a->recs[i];
		uint32_t st = atomic_load_explicit(&rec->state, memory_order_relaxed);
		if (st != L1_STATE_FREE && !l1__rec_geometry_ok(a, rec))
			continue;       /* damaged: never zeroed or released; repair drops it */
		if (st == L1_STATE_ALLOCATED && !l1__live_tag(a, lv, rec->owner_client)) {
			r0.objects_reclaimed++;
			r0.bytes_reclaimed += rec->size;
			if (rec->holds)
				l1__rec_set_state(a, rec, L1_STATE_DOOMED);
			else
				l1__rec_retire(a, (uint32_t)i, q, &nq);
		} else if (st == L1_STATE_DOOMED && rec->holds == 0) {
			l1__rec_retire(a, (uint32_t)i, q, &nq);
		}
	}
	take_dirty(&tc, q, &nq, &r0.dirty_requeued);
	l1__zero_queue(a, q, nq);
	l1__unlock(a);
	free(tc.live);
out:
	free(lv);
	atomic_fetch_add(&a->h->gc_objects, r0.objects_reclaimed);
	atomic_fetch_add(&a->h->gc_holds, r0.holds_dropped);
	atomic_fetch_add(&a->h->gc_clients, r0.clients_dropped);
	atomic_fetch_add(&a->h->gc_requeued, r0.dirty_requeued);
	if (res)
		*res = r0;
	return r;
}

/* Under the lock, after a repair: dirty extents whose zeroer is gone (or
 * stalled) are taken over by this process's engine at once (gc would find
 * them too, but allocate may be waiting on exactly these bytes). */
void l1__requeue_orphans(struct l1_arena *a)
{
	struct l1_zero_extent q[L1_ZQ_MAX];
	uint32_t nq = 0;
	struct l1_live *lv = malloc(sizeof *lv);
	if (!lv)
		return;
	l1__live_init(lv);
	struct take_ctx tc = { a, lv, NULL, 0 };
	take_dirty(&tc, q, &nq, NULL);
	l1__zero_queue(a, q, nq);
	free(tc.live);
	free(lv);
}

int l1_arena_flush(struct l1_arena *a, int64_t timeout_ms)
{
	int r = l1__handle_check(a);
	if (r)
		return r;
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
					   : l1__mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	uint64_t gc_ns = 0, seen = UINT64_MAX;
	while (atomic_load(&a->h->dirty_bytes)) {
		if (a->zero)
			l1_zero_flush(a->zero, 20);
		l1__fin_release_now(a); /* what the engine finished */
		uint64_t dirty = atomic_load(&a->h->dirty_bytes);
		if (!dirty)
			break;
		/* extents whose zeroer died: at once; of a stopped one: again every
		 * half lease while nothing moves */
		if (!a->readonly && (!gc_ns || (dirty >= seen && l1__mono_ns() - gc_ns >=
							   L1_LEASE_MS * 500000ull))) {
			l1_arena_gc(a, NULL);
			gc_ns = l1__mono_ns();
			seen = dirty;
			continue;
		}
		if (dirty < seen) {
			seen = dirty;
			gc_ns = l1__mono_ns();
		}
		if (l1__mono_ns() >= deadline)
			return l1__err(-ETIMEDOUT, "%llu bytes still dirty after %lld ms",
				       (unsigned long long)atomic_load(&a->h->dirty_bytes),
				       (long long)timeout_ms);
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return 0;
}
