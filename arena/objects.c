/*
 * objects.c - the records and what hangs off them: the free-slot stack,
 * object ids (generation << 32 | slot, so a reused slot never answers to an
 * old id), the state machine's counters, the key index (hash buckets chained
 * through the records) and hold entries (per record, one entry per holding
 * client, chained from the record).  Everything here runs under the pool
 * lock; the state word is stored last with release semantics so lock-free
 * readers of a record see it whole.  Chain walks are bounded by the table
 * sizes, so a corrupt file cannot make them loop.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

uint32_t l1__slot_pop(struct l1_arena *a)
{
	if (a->h->slot_top == 0)
		return UINT32_MAX;
	return a->slots[--a->h->slot_top];
}

/* True if the top count entries of the free-slot stack name free slots
 * inside the table, so that count pops cannot write a record outside it or
 * over a live one (a damaged file); if not, the stack, which is derived, is
 * rebuilt from the records first.  A slot listed twice is caught when it is
 * popped (l1__slot_pop_free). */
static void slots_rebuild(struct l1_arena *a)
{
	struct l1_hdr *h = a->h;
	h->slot_top = 0;
	for (uint64_t s = h->max_objects; s-- > 0;)
		if (atomic_load_explicit(&a->recs[s].state, memory_order_relaxed) ==
		    L1_STATE_FREE)
			a->slots[h->slot_top++] = (uint32_t)s;
}

int l1__slots_ready(struct l1_arena *a, uint32_t count)
{
	struct l1_hdr *h = a->h;
	uint64_t top = h->slot_top;
	int bad = top > h->max_objects;
	for (uint64_t i = 0; !bad && i < count && i < top; i++) {
		uint32_t s = a->slots[top - 1 - i];
		bad = s >= h->max_objects ||
		      atomic_load_explicit(&a->recs[s].state, memory_order_relaxed) !=
			      L1_STATE_FREE;
	}
	if (bad)
		slots_rebuild(a);
	return h->slot_top >= count;
}

/* Pops a slot whose record is FREE (after l1__slots_ready said enough are
 * there): an entry listed twice names a record this batch already took, and
 * then the stack is rebuilt from the records. */
uint32_t l1__slot_pop_free(struct l1_arena *a)
{
	uint32_t s = l1__slot_pop(a);
	if (s < a->h->max_objects &&
	    atomic_load_explicit(&a->recs[s].state, memory_order_relaxed) == L1_STATE_FREE)
		return s;
	slots_rebuild(a);
	return l1__slot_pop(a);
}

void l1__slot_push(struct l1_arena *a, uint32_t slot)
{
	if (a->h->slot_top < a->h->max_objects)
		a->slots[a->h->slot_top++] = slot;
}

static int live_state(uint32_t s)
{
	return s == L1_STATE_ALLOCATED || s == L1_STATE_PUBLISHED || s == L1_STATE_DOOMED;
}

/* Counters written only under the pool lock: a plain read-modify-write,
 * published with an atomic store for lock-free readers (no locked
 * instruction on the hot path). */
static inline void ctr_add(_Atomic uint64_t *c, int64_t d)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)d,
			      memory_order_relaxed);
}

void l1__ctr_add(_Atomic uint64_t *c, int64_t d)
{
	ctr_add(c, d);
}

void l1__rec_set_state(struct l1_arena *a, struct l1_rec *r, uint32_t state)
{
	struct l1_hdr *h = a->h;
	uint32_t old = atomic_load_explicit(&r->state, memory_order_relaxed);
	if (old == state)
		return;
	if (old < 5)
		ctr_add(&h->nobj[old], -1);
	ctr_add(&h->nobj[state], 1);
	if (live_state(old) && !live_state(state)) {
		ctr_add(&h->used_bytes, -(int64_t)r->size);
		l1__layout_ref(a, r->layout_id, -1);
	}
	if (!live_state(old) && live_state(state)) {
		ctr_add(&h->used_bytes, (int64_t)r->size);
		l1__layout_ref(a, r->layout_id, 1);
	}
	if (old == L1_STATE_DIRTY)
		ctr_add(&h->dirty_bytes, -(int64_t)r->size);
	if (state == L1_STATE_DIRTY)
		ctr_add(&h->dirty_bytes, (int64_t)r->size);
	atomic_store_explicit(&r->state, state, memory_order_release);
}

/* Checks that id names a live object of this pool: 0 and *slot, or an
 * error that says what is wrong with it. */
int l1__rec_check_id(struct l1_arena *a, uint64_t id, uint64_t pool_id, uint32_t *slot)
{
	if (pool_id && pool_id != a->h->pool_id)
		return l1__err(-EXDEV, "object %llu belongs to another pool",
			       (unsigned long long)id);
	uint64_t s = id & 0xffffffffull;
	uint32_t gen = (uint32_t)(id >> 32);
	if (s >= a->h->max_objects || gen == 0)
		return l1__err(-ENOENT, "no object %llu in this pool", (unsigned long long)id);
	struct l1_rec *r = &a->recs[s];
	uint32_t st = atomic_load_explicit(&r->state, memory_order_acquire);
	if (r->gen != gen) {
		if ((int32_t)(gen - r->gen) > 0)
			return l1__err(-ENOENT, "no object %llu in this pool",
				       (unsigned long long)id);
		return l1__err(-ESTALE, "object %llu is gone: its slot now holds a newer object",
			       (unsigned long long)id);
	}
	if (!live_state(st))
		return l1__err(-EALREADY, "object %llu was already freed",
			       (unsigned long long)id);
	if (!l1__rec_geometry_ok(a, r))
		return l1__err(-EBADMSG, "object %llu: its record is damaged (extent outside "
			       "the data region): run `l1ctl memcheck --repair`",
			       (unsigned long long)id);
	*slot = (uint32_t)s;
	return 0;
}

void l1__rec_fill_obj(const struct l1_arena *a, uint32_t slot, struct l1_obj *o)
{
	const struct l1_rec *r = &a->recs[slot];
	o->id = ((uint64_t)r->gen << 32) | slot;
	o->offset = r->offset;
	o->size = r->size;
	/* a damaged record (listed by l1_obj_list) gets no pointer: base + a wild
	 * offset is not even a valid pointer to compute */
	o->ptr = l1__rec_geometry_ok(a, r) ? a->base + r->offset : NULL;
	o->pool_id = a->h->pool_id;
	o->layout_id = r->layout_id;
	o->reserved = 0;
	/* records made before data_size existed, or damaged ones: the block */
	o->data_size = r->data_size && r->data_size <= r->size ? r->data_size : r->size;
}

/* ---- key index --------------------------------------------------------- */

static uint32_t *bucket_of(struct l1_arena *a, uint64_t hash)
{
	return &a->buckets[hash & (a->h->nbuckets - 1)];
}

void l1__key_link(struct l1_arena *a, uint32_t slot)
{
	struct l1_rec *r = &a->recs[slot];
	uint32_t *b = bucket_of(a, r->key_hash);
	r->key_next = *b;
	*b = slot + 1;
	r->flags |= L1_REC_F_KEYED;
}

void l1__key_unlink(struct l1_arena *a, uint32_t slot)
{
	struct l1_rec *r = &a->recs[slot];
	if (!(r->flags & L1_REC_F_KEYED))
		return;
	uint32_t *link = bucket_of(a, r->key_hash);
	for (uint64_t guard = 0; *link && guard <= a->h->max_objects; guard++) {
		uint32_t s = *link - 1;
		if (s >= a->h->max_objects)
			break;
		if (s == slot) {
			*link = r->key_next;
			break;
		}
		link = &a->recs[s].key_next;
	}
	r->key_next = L1_NIL;
	r->flags &= ~L1_REC_F_KEYED;
}

int64_t l1__key_find(struct l1_arena *a, const char *key, uint32_t len)
{
	uint64_t hash = l1__hash(key, len);
	uint32_t link = *bucket_of(a, hash);
	for (uint64_t guard = 0; link && guard <= a->h->max_objects; guard++) {
		uint32_t s = link - 1;
		if (s >= a->h->max_objects)
			break;
		struct l1_rec *r = &a->recs[s];
		if (r->key_hash == hash && r->key_len == len && !memcmp(r->key, key, len) &&
		    atomic_load_explicit(&r->state, memory_order_relaxed) == L1_STATE_PUBLISHED &&
		    l1__rec_geometry_ok(a, r))
			return s;
		link = r->key_next;
	}
	return -1;
}

/* ---- holds ------------------------------------------------------------- */

static uint32_t *hold_find(struct l1_arena *a, uint32_t slot, uint32_t client)
{
	uint32_t *link = &a->recs[slot].hold_head;
	for (uint64_t guard = 0; *link && guard <= a->h->max_holds; guard++) {
		uint32_t i = *link - 1;
		if (i >= a->h->max_holds)
			return NULL;
		if (a->holds[i].client == client)
			return link;
		link = &a->holds[i].next;
	}
	return NULL;
}

/* The client table entry a hold's client tag names (NULL if none). */
static struct l1_client *holder(struct l1_arena *a, uint32_t client)
{
	uint32_t s = client & ((1u << L1_CLIENT_BITS) - 1);
	return s < a->h->max_clients ? &a->clients[s] : NULL;
}

static void hold_account(struct l1_arena *a, uint32_t slot, uint32_t client, int64_t d)
{
	struct l1_client *c = holder(a, client);
	a->recs[slot].holds += (uint32_t)d;
	if (c)
		c->holds += (uint32_t)d;
	ctr_add(&a->h->nholds, d);
}

int l1__hold_add(struct l1_arena *a, uint32_t slot, uint32_t client)
{
	uint32_t *link = hold_find(a, slot, client);
	/* the 32-bit counts must not wrap (a damaged pool can start near it) */
	if (a->recs[slot].holds == UINT32_MAX ||
	    (holder(a, client) && holder(a, client)->holds == UINT32_MAX) ||
	    (link && a->holds[*link - 1].count == UINT32_MAX))
		return l1__err(-EOVERFLOW, "object in slot %u: too many holds (%u)", slot,
			       a->recs[slot].holds);
	if (link) {
		a->holds[*link - 1].count++;
	} else {
		uint32_t i1 = (uint32_t)a->h->hold_free;
		if (!i1 || i1 > a->h->max_holds)
			return l1__err(-ENOSPC, "hold table full (%llu holds)",
				       (unsigned long long)a->h->max_holds);
		struct l1_hold_ent *e = &a->holds[i1 - 1];
		/* a wild link (damage) ends the free list here; memcheck finds
		 * the entries it lost and repair relinks them */
		a->h->hold_free = e->next <= a->h->max_holds ? e->next : 0;
		e->slot = slot;
		e->client = client;
		e->count = 1;
		e->next = a->recs[slot].hold_head;
		a->recs[slot].hold_head = i1;
	}
	hold_account(a, slot, client, 1);
	return 0;
}

static void hold_unlink(struct l1_arena *a, uint32_t *link)
{
	uint32_t i1 = *link;
	struct l1_hold_ent *e = &a->holds[i1 - 1];
	*link = e->next;
	e->count = 0;
	e->next = (uint32_t)a->h->hold_free;
	a->h->hold_free = i1;
}

int l1__hold_drop(struct l1_arena *a, uint32_t slot, uint32_t client, uint32_t n)
{
	uint32_t *link = hold_find(a, slot, client);
	if (!link)
		return l1__err(-ENOENT, "this process holds no hold on that object");
	struct l1_hold_ent *e = &a->holds[*link - 1];
	if (n > e->count)
		n = e->count;
	e->count -= n;
	hold_account(a, slot, client, -(int64_t)n);
	if (e->count == 0)
		hold_unlink(a, link);
	return 0;
}

/* Drops a client's holds until max records have lost their last hold (their
 * slots go to released) or none is left; call again while *nreleased ==
 * max: every hold is dropped and every released slot reported, so none
 * stays doomed.  Returns the number of holds dropped. */
uint64_t l1__holds_drop_client(struct l1_arena *a, uint32_t client,
			       uint32_t *released, uint32_t *nreleased, uint32_t max)
{
	uint64_t dropped = 0;
	*nreleased = 0;
	for (uint64_t i = 0; i < a->h->max_holds && *nreleased < max; i++) {
		struct l1_hold_ent *e = &a->holds[i];
		if (!e->count || e->client != client || e->slot >= a->h->max_objects)
			continue;
		uint32_t slot = e->slot;
		uint32_t *link = hold_find(a, slot, client);
		uint32_t n = e->count;
		dropped += n;
		hold_account(a, slot, client, -(int64_t)n);
		if (link) {
			hold_unlink(a, link);
		} else {        /* not on its chain (corrupt): free it anyway */
			e->count = 0;
			e->next = (uint32_t)a->h->hold_free;
			a->h->hold_free = (uint32_t)i + 1;
		}
		if (a->recs[slot].holds == 0)
			released[(*nreleased)++] = slot;
	}
	return dropped;
}
