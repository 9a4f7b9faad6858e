/*
 * dirty.c - the dirty-extent table: freed bytes that are not zeroed yet,
 * once their record has gone back to the free stack.  With zero-on-free a
 * freed object's record is released at once (the next allocation reuses
 * it while it is still in this CPU's cache) and its extent moves here; its
 * blocks stay taken in the bitmap until the zeroing engine has cleared
 * them.  Entries carry a generation, bumped on each use, which the engine
 * gets as its cookie (slot | L1_ZX_TABLE, gen), so a completion that comes
 * after a repair or a gc takeover cannot release a reused entry.  Which
 * entries are free is derived (offset 0); an entry names its zeroer by
 * client tag (client.c), and a takeover gives it a new generation; the free stack is rebuilt from
 * that whenever it looks wrong.  Objects freed together that lie back to
 * back share one entry (and one zeroing extent): an entry is a run of
 * freed bytes, not an object.  Everything here runs under the pool lock.
 * When the table is full, the caller keeps the record DIRTY instead.
 */
#include "internal.h"

/* Rebuilds the free stack from the entries (derived state). */
static void stack_rebuild(struct l1_arena *a)
{
	struct l1_hdr *h = a->h;
	h->dirty_top = 0;
	for (uint64_t i = h->max_dirty; i-- > 0;)
		if (a->dirty[i].offset == 0)
			a->dirty_stack[h->dirty_top++] = (uint32_t)i;
}

static int64_t stack_pop(struct l1_arena *a)
{
	struct l1_hdr *h = a->h;
	if (h->dirty_top > h->max_dirty)
		stack_rebuild(a);
	if (h->dirty_top == 0)
		return -1;
	uint32_t i = a->dirty_stack[--h->dirty_top];
	if (i < h->max_dirty && a->dirty[i].offset == 0)
		return i;
	stack_rebuild(a);               /* damaged, or listed twice */
	if (h->dirty_top == 0)
		return -1;
	return a->dirty_stack[--h->dirty_top];
}

int l1__dirty_add(struct l1_arena *a, uint64_t offset, uint64_t size,
		  struct l1_zero_extent *x)
{
	if (!a->dirty || offset == 0 ||
	    (a->dirty_limit && atomic_load(&a->h->dirty_extents) >= a->dirty_limit))
		return -1;
	int64_t i = stack_pop(a);
	if (i < 0)
		return -1;
	struct l1_dirty_ent *e = &a->dirty[i];
	e->offset = offset;
	e->size = size;
	e->zeroer_pid = a->pid;
	__atomic_store_n(&e->zeroer_client, l1__client_tag(a), __ATOMIC_RELAXED);
	__atomic_store_n(&e->gen, e->gen + 1 ? e->gen + 1 : 1, __ATOMIC_RELAXED);
	l1__ctr_add(&a->h->dirty_bytes, (int64_t)size);
	l1__ctr_add(&a->h->dirty_extents, 1);
	*x = (struct l1_zero_extent){ (uint32_t)i | L1_ZX_TABLE, e->gen, a->base + offset, size };
	return 0;
}

/* Grows the entry behind queued extent x by [offset, +size) if that lies
 * right after it, inside the same grow step: 0, or -1 (add one instead). */
int l1__dirty_extend(struct l1_arena *a, struct l1_zero_extent *x, uint64_t offset,
		     uint64_t size)
{
	struct l1_dirty_ent *e = l1__dirty_of(a, x->slot, x->gen);
	uint64_t step = a->h->grow_step, rel;
	if (!e || e->offset + e->size != offset || __atomic_load_n(&e->zeroer_client, __ATOMIC_RELAXED) != l1__client_tag(a) ||
	    (uint8_t *)x->ptr != a->base + e->offset || x->len != e->size)
		return -1;
	rel = e->offset - a->h->data_off;
	if (rel / step != (offset + size - 1 - a->h->data_off) / step)
		return -1;
	e->size += size;
	x->len += size;
	l1__ctr_add(&a->h->dirty_bytes, (int64_t)size);
	return 0;
}

/* The entry named by an engine cookie, if it is still that use of it. */
struct l1_dirty_ent *l1__dirty_of(struct l1_arena *a, uint32_t slot, uint32_t gen)
{
	uint32_t i = slot & ~L1_ZX_TABLE;
	if (!(slot & L1_ZX_TABLE) || i >= a->h->max_dirty || !a->dirty)
		return NULL;
	struct l1_dirty_ent *e = &a->dirty[i];
	return e->gen == gen && e->offset ? e : NULL;
}

uint64_t l1__dirty_release(struct l1_arena *a, uint32_t slot, uint32_t gen)
{
	struct l1_dirty_ent *e = l1__dirty_of(a, slot, gen);
	if (!e || !l1__extent_ok(a, e->offset, e->size))
		return 0;               /* released already, or repaired away */
	uint64_t size = e->size, b, n;
	l1__extent_blocks(a, e->offset, size, &b, &n);
	l1__bm_clear(a, b, n);
	l1__ctr_add(&a->h->dirty_bytes, -(int64_t)size);
	l1__ctr_add(&a->h->dirty_extents, -1);
	e->offset = 0;
	e->size = 0;
	e->zeroer_pid = 0;
	__atomic_store_n(&e->zeroer_client, 0, __ATOMIC_RELAXED);
	if (a->h->dirty_top < a->h->max_dirty)
		a->dirty_stack[a->h->dirty_top++] = slot & ~L1_ZX_TABLE;
	return size;
}

/* Under the lock: the first len bytes of the entry (zeroed by the thread
 * that claimed it) go back to the free bitmap and the entry keeps the rest,
 * so a long extent zeroed at free is handed out piece by piece rather than
 * after its last byte.  len at or past the end releases the whole entry.
 * Returns the bytes released (0 if the cookie is stale). */
uint64_t l1__dirty_release_head(struct l1_arena *a, uint32_t slot, uint32_t gen, uint64_t len)
{
	struct l1_dirty_ent *e = l1__dirty_of(a, slot, gen);
	uint64_t bs = a->h->block_size, b, n;
	if (!e || !l1__extent_ok(a, e->offset, e->size))
		return 0;
	if (len >= e->size)
		return l1__dirty_release(a, slot, gen);
	len = len / bs * bs;
	if (!len)
		return 0;
	l1__extent_blocks(a, e->offset, len, &b, &n);
	l1__bm_clear(a, b, n);
	e->offset += len;
	e->size -= len;
	l1__ctr_add(&a->h->dirty_bytes, -(int64_t)len);
	return len;
}

/* Rebuild: after the sound records took their blocks, each entry takes
 * its own; one whose extent is impossible or overlaps is dropped (its
 * bytes belong to a record, or are not trusted).  Counters, free stack. */
void l1__dirty_rebuild(struct l1_arena *a)
{
	struct l1_hdr *h = a->h;
	uint64_t n = 0;
	if (!a->dirty) {
		h->dirty_top = 0;
		atomic_store(&h->dirty_extents, 0);
		return;
	}
	for (uint64_t i = 0; i < h->max_dirty; i++) {
		struct l1_dirty_ent *e = &a->dirty[i];
		if (!e->offset)
			continue;
		if (l1__extent_claim(a, e->offset, e->size) < 0) {
			e->offset = 0;
			e->size = 0;
			continue;
		}
		atomic_fetch_add(&h->dirty_bytes, e->size);
		n++;
	}
	atomic_store(&h->dirty_extents, n);
	stack_rebuild(a);
}

int l1__zeroer_seize(uint32_t *zeroer, uint32_t seen, uint32_t me)
{
	return __atomic_compare_exchange_n(zeroer, &seen, me, 0, __ATOMIC_ACQ_REL,
					   __ATOMIC_RELAXED);
}

/* gc and repair: hands the extents that take(ctx, entry) allows (their
 * zeroer is gone or stalled) to this process's engine, each under a new
 * generation, so the old zeroer's cookie releases nothing. */
void l1__dirty_takeover(struct l1_arena *a, int (*take)(void *, const struct l1_dirty_ent *),
			void *ctx, struct l1_zero_extent *q, uint32_t *nq, uint64_t *taken)
{
	if (!a->dirty || !a->zero)
		return;
	for (uint64_t i = 0; i < a->h->max_dirty; i++) {
		struct l1_dirty_ent *e = &a->dirty[i];
		if (!e->offset || !l1__extent_ok(a, e->offset, e->size))
			continue;
		uint32_t seen = __atomic_load_n(&e->zeroer_client, __ATOMIC_ACQUIRE);
		if (!take(ctx, e) || !l1__zeroer_seize(&e->zeroer_client, seen, l1__client_tag(a)))
			continue;
		uint32_t gen = e->gen + 1 ? e->gen + 1 : 1;
		e->zeroer_pid = a->pid;
		__atomic_store_n(&e->gen, gen, __ATOMIC_RELEASE);
		l1__zero_push(a, q, nq, (struct l1_zero_extent){ (uint32_t)i | L1_ZX_TABLE, gen,
								 a->base + e->offset, e->size });
		if (taken)
			(*taken)++;
	}
}
