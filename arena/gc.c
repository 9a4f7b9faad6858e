/*
 * gc.c - reclaiming what dead processes left behind, and flush.  A process
 * is dead when /proc/PID/stat is gone, is a zombie, or shows another start
 * time (so a reused pid is not the owner).  gc first scans the records
 * under the lock for the processes to ask about (other threads write those
 * fields under it), asks /proc about them outside the lock, then, under the
 * lock again, for each dead one: drops its
 * client slot and holds, reclaims its unpublished objects, and takes over
 * the dirty extents it was zeroing, DIRTY records and dirty-extent table
 * entries alike (they are queued to this process's engine), unless a live
 * record claims the same bytes (damage: left to the repair).  Published
 * objects survive their writer.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

#define MAX_PIDS 4096

struct proc_id {
	int32_t pid;
	int32_t alive;
	uint64_t start;
};

struct pid_set {
	struct proc_id p[MAX_PIDS];
	uint32_t n;
};

static void pid_add(struct pid_set *s, int32_t pid, uint64_t start)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (s->p[i].pid == pid && s->p[i].start == start)
			return;
	if (s->n < MAX_PIDS)
		s->p[s->n++] = (struct proc_id){ pid, 1, start };
}

/* Dead if we asked about it and it was dead; unknown pids count as alive. */
static int pid_dead(const struct pid_set *s, int32_t pid, uint64_t start)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (s->p[i].pid == pid && s->p[i].start == start)
			return !s->p[i].alive;
	return 0;
}

static void collect(struct l1_arena *a, struct pid_set *s)
{
	struct l1_hdr *h = a->h;
	for (uint64_t i = 0; i < h->max_clients; i++) {
		struct l1_client *c = &a->clients[i];
		if (c->state == L1_CLIENT_LIVE)
			pid_add(s, c->pid, c->start);
	}
	for (uint64_t i = 0; i < h->max_objects; i++) {
		struct l1_rec *r = &a->recs[i];
		uint32_t st = atomic_load_explicit(&r->state, memory_order_relaxed);
		if (st == L1_STATE_ALLOCATED)
			pid_add(s, r->owner_pid, r->owner_start);
		else if (st == L1_STATE_DIRTY)
			pid_add(s, r->zeroer_pid, r->zeroer_start);
	}
	for (uint64_t i = 0; a->dirty && i < h->max_dirty; i++)
		if (a->dirty[i].offset && a->dirty[i].zeroer_pid)
			pid_add(s, a->dirty[i].zeroer_pid, a->dirty[i].zeroer_start);
}

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
	struct pid_set *s;
	uint64_t *live;                 /* built at the first candidate */
	int no_memory;
};

/* gc may take over an extent whose zeroer is dead (or none) and which no
 * live record overlaps. */
static int gc_may_take(struct take_ctx *t, int32_t pid, uint64_t start, uint64_t off,
		       uint64_t size)
{
	if (pid && !pid_dead(t->s, pid, start))
		return 0;
	if (!t->live && !t->no_memory) {
		t->live = live_blocks(t->a);
		t->no_memory = !t->live;
	}
	return t->live && clear_of_live(t->a, t->live, off, size);
}

static int gc_take_entry(void *ctx, const struct l1_dirty_ent *e)
{
	return gc_may_take(ctx, e->zeroer_pid, e->zeroer_start, e->offset, e->size);
}

/* After a repair (no overlaps left): whose zeroer is gone. */
static int repair_take_entry(void *ctx, const struct l1_dirty_ent *e)
{
	(void)ctx;
	return !e->zeroer_pid || !l1__proc_alive(e->zeroer_pid, e->zeroer_start);
}

/* Outside the lock: which of the collected processes are alive. */
static void probe(struct l1_arena *a, struct pid_set *s)
{
	for (uint32_t i = 0; i < s->n; i++) {
		struct proc_id *p = &s->p[i];
		p->alive = (p->pid == a->pid && p->start == a->start) ||
			   l1__proc_alive(p->pid, p->start);
	}
}

int l1_arena_gc(struct l1_arena *a, struct l1_gc_result *res)
{
	struct l1_gc_result r0 = { 0 };
	struct l1_zero_extent q[L1_ZQ_MAX];
	uint32_t nq = 0, rel[64], nrel;
	int r = l1__writable(a, "run gc");
	if (r)
		return r;
	struct pid_set *s = calloc(1, sizeof *s);
	if (!s)
		return l1__err(-ENOMEM, "out of process memory");
	if ((r = l1__lock(a)))
		goto out;
	collect(a, s);
	l1__unlock(a);
	probe(a, s);
	if ((r = l1__lock(a)))
		goto out;
	struct l1_hdr *h = a->h;
	struct take_ctx tc = { a, s, NULL, 0 };
	for (uint64_t i = 0; i < h->max_clients; i++) {
		struct l1_client *c = &a->clients[i];
		if (c->state != L1_CLIENT_LIVE || !pid_dead(s, c->pid, c->start))
			continue;
		do {
			r0.holds_dropped += l1__holds_drop_client(a, (uint32_t)i, rel, &nrel, 64);
			for (uint32_t k = 0; k < nrel; k++)
				if (atomic_load(&a->recs[rel[k]].state) == L1_STATE_DOOMED)
					l1__rec_retire(a, rel[k], q, &nq);
		} while (nrel == 64);
		c->state = L1_CLIENT_FREE;
		atomic_fetch_sub(&h->nclients, 1);
		r0.clients_dropped++;
	}
	for (uint64_t i = 0; i < h->max_objects; i++) {
		struct l1_rec *rec = &a->recs[i];
		uint32_t st = atomic_load_explicit(&rec->state, memory_order_relaxed);
		if (st != L1_STATE_FREE && !l1__rec_geometry_ok(a, rec))
			continue;       /* damaged: never zeroed or released; repair drops it */
		if (st == L1_STATE_ALLOCATED && pid_dead(s, rec->owner_pid, rec->owner_start)) {
			r0.objects_reclaimed++;
			r0.bytes_reclaimed += rec->size;
			if (rec->holds) {
				l1__rec_set_state(a, rec, L1_STATE_DOOMED);
			} else {
				l1__rec_retire(a, (uint32_t)i, q, &nq);
			}
		} else if (st == L1_STATE_DIRTY && a->zero &&
			   gc_may_take(&tc, rec->zeroer_pid, rec->zeroer_start, rec->offset,
				       rec->size)) {
			rec->zeroer_pid = a->pid;
			rec->zeroer_start = a->start;
			l1__zero_push(a, q, &nq, (struct l1_zero_extent){ (uint32_t)i, rec->gen,
								      a->base + rec->offset,
								      rec->size });
			r0.dirty_requeued++;
		} else if (st == L1_STATE_DOOMED && rec->holds == 0) {
			l1__rec_retire(a, (uint32_t)i, q, &nq);
		}
	}
	l1__dirty_takeover(a, gc_take_entry, &tc, q, &nq, &r0.dirty_requeued);
	l1__zero_queue(a, q, nq);
	l1__unlock(a);
	free(tc.live);
out:
	free(s);
	atomic_fetch_add(&a->h->gc_objects, r0.objects_reclaimed);
	atomic_fetch_add(&a->h->gc_holds, r0.holds_dropped);
	atomic_fetch_add(&a->h->gc_clients, r0.clients_dropped);
	atomic_fetch_add(&a->h->gc_requeued, r0.dirty_requeued);
	if (res)
		*res = r0;
	return r;
}

/* Under the lock, after a repair: dirty extents whose zeroer is gone are
 * taken over by this process's engine at once (gc would find them too, but
 * allocate may be waiting on exactly these bytes). */
void l1__requeue_orphans(struct l1_arena *a)
{
	struct l1_zero_extent q[L1_ZQ_MAX];
	uint32_t nq = 0;
	if (!a->zero)
		return;
	for (uint64_t i = 0; i < a->h->max_objects; i++) {
		struct l1_rec *rec = &a->recs[i];
		if (atomic_load_explicit(&rec->state, memory_order_relaxed) != L1_STATE_DIRTY)
			continue;
		if (rec->zeroer_pid == a->pid && rec->zeroer_start == a->start)
			continue;
		if (rec->zeroer_pid && l1__proc_alive(rec->zeroer_pid, rec->zeroer_start))
			continue;
		rec->zeroer_pid = a->pid;
		rec->zeroer_start = a->start;
		l1__zero_push(a, q, &nq, (struct l1_zero_extent){ (uint32_t)i, rec->gen,
							      a->base + rec->offset, rec->size });
	}
	l1__dirty_takeover(a, repair_take_entry, NULL, q, &nq, NULL);
	l1__zero_queue(a, q, nq);
}

int l1_arena_flush(struct l1_arena *a, int64_t timeout_ms)
{
	int r = l1__handle_check(a);
	if (r)
		return r;
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
					   : l1__mono_ns() + (uint64_t)timeout_ms * 1000000ull;
	int gc_done = 0;
	while (atomic_load(&a->h->dirty_bytes)) {
		if (a->zero)
			l1_zero_flush(a->zero, 20);
		l1__fin_release_now(a); /* what the engine finished */
		if (!atomic_load(&a->h->dirty_bytes))
			break;
		if (!gc_done && !a->readonly) {
			l1_arena_gc(a, NULL);   /* extents whose zeroer died */
			gc_done = 1;
			continue;
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
