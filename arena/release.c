/*
 * release.c - the end of an object's life.  A record leaves the live states
 * through l1__rec_retire (under the pool lock, holds already 0): with
 * zero-on-free it becomes DIRTY (its bits stay taken, so allocate can never
 * hand the bytes out) and its extent is queued for this process's zeroing
 * engine; without, its bits are released at once.  The engine's completion
 * callback takes the pool lock once per batch, checks each extent still
 * names the same DIRTY record (slot and generation), and releases it:
 * bits cleared, record FREE, slot back on the stack.  Queued extents are
 * handed to the engine in batches; the engine only queues them, so this is
 * safe under the pool lock.
 */
#include "internal.h"

/* Under the lock.  Extents the engine refuses are left DIRTY with no zeroer,
 * so the next gc (in any process) takes them over. */
void l1__zero_queue(struct l1_arena *a, const struct l1_zero_extent *q, uint32_t n)
{
	if (!n || (a->zero && l1_zero_submit(a->zero, q, n) == 0))
		return;
	for (uint32_t i = 0; i < n; i++) {
		struct l1_rec *r = &a->recs[q[i].slot];
		if (r->gen == q[i].gen && r->zeroer_pid == a->pid) {
			r->zeroer_pid = 0;
			r->zeroer_start = 0;
		}
	}
}

void l1__rec_retire(struct l1_arena *a, uint32_t slot, struct l1_zero_extent *q,
		    uint32_t *nq)
{
	struct l1_rec *r = &a->recs[slot];
	if (!l1__rec_geometry_ok(a, r))
		return;         /* damaged record: no bits or bytes to release; repair drops it */
	l1__key_unlink(a, slot);
	if (a->h->zero_on_free && a->zero) {
		r->zeroer_pid = a->pid;
		r->zeroer_start = a->start;
		l1__rec_set_state(a, r, L1_STATE_DIRTY);
		q[*nq] = (struct l1_zero_extent){ slot, r->gen, a->base + r->offset, r->size };
		if (++*nq == L1_ZQ_MAX) {
			l1__zero_queue(a, q, *nq);
			*nq = 0;
		}
		return;
	}
	if (a->h->zero_on_free) {       /* no engine here: leave it for gc */
		r->zeroer_pid = 0;
		r->zeroer_start = 0;
		l1__rec_set_state(a, r, L1_STATE_DIRTY);
		return;
	}
	uint64_t b = (r->offset - a->h->data_off) / a->h->block_size;
	l1__bm_clear(a, b, r->size / a->h->block_size);
	l1__rec_set_state(a, r, L1_STATE_FREE);
	l1__slot_push(a, slot);
}

void l1__zero_done(void *ctx, const struct l1_zero_extent *e, uint32_t n)
{
	struct l1_arena *a = ctx;
	uint64_t bytes = 0;
	if (l1__lock(a))
		return;                 /* lock unusable: gc re-zeroes later */
	for (uint32_t i = 0; i < n; i++) {
		if (e[i].slot >= a->h->max_objects)
			continue;
		struct l1_rec *r = &a->recs[e[i].slot];
		if (r->gen != e[i].gen ||
		    atomic_load_explicit(&r->state, memory_order_relaxed) != L1_STATE_DIRTY ||
		    !l1__rec_geometry_ok(a, r))
			continue;
		if (a->test_hook)
			a->test_hook(a, L1_HOOK_ZERO_DONE);
		uint64_t b = (r->offset - a->h->data_off) / a->h->block_size;
		l1__bm_clear(a, b, r->size / a->h->block_size);
		r->zeroer_pid = 0;
		l1__rec_set_state(a, r, L1_STATE_FREE);
		l1__slot_push(a, e[i].slot);
		bytes += e[i].len;
	}
	l1__unlock(a);
	atomic_fetch_add_explicit(&a->h->zeroed_bytes, bytes, memory_order_relaxed);
	struct l1_zero_stats st;
	l1_zero_get_stats(a->zero, &st);
	uint64_t prev = atomic_exchange(&a->zero_busy_seen, st.busy_ns);
	if (st.busy_ns > prev)
		atomic_fetch_add_explicit(&a->h->zero_busy_ns, st.busy_ns - prev,
					  memory_order_relaxed);
}
