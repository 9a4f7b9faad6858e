/*
 * repair.c - the rebuild of all derived state from the records, the
 * dirty-extent table and the hold entries: after a lock owner died (lock.c)
 * and for memcheck --repair (check.c), always under the pool lock.  A
 * record whose geometry is impossible, or that overlaps an earlier one, is
 * dropped (its bytes are not trusted); so is a dirty extent, which comes
 * after the sound records (a record wins an overlap); a record whose other
 * fields are impossible (generation 0, a key too long, an unknown layout)
 * but whose extent is its own is retired to DIRTY, so its bytes are zeroed
 * before reuse; of two published records with one key, the second keeps its
 * object and loses the key.  Client slots in an unknown state or with
 * generation 0 are freed; the clients counter is recounted.  So a repair
 * always ends clean.  Calls extent.c, dirty.c, objects.c, client.c, never
 * check.c.
 */
#include <string.h>

#include "internal.h"

static int live_or_dirty(uint32_t s)
{
	return s >= L1_STATE_ALLOCATED && s <= L1_STATE_DOOMED;
}

/* Fields a live or dirty record must have besides its geometry (memcheck
 * checks the same); a dirty record's layout no longer matters. */
static int rec_fields_ok(const struct l1_arena *a, const struct l1_rec *r, uint32_t st)
{
	if (r->gen == 0 || r->key_len > L1_KEY_MAX)
		return 0;
	return st == L1_STATE_DIRTY ||
	       (r->layout_id < a->h->nlayouts && a->layouts[r->layout_id].bytes <= r->size);
}

void l1__rebuild(struct l1_arena *a)
{
	struct l1_hdr *h = a->h;
	if (atomic_load(&h->committed) > h->data_size)
		atomic_store(&h->committed, h->data_size);
	memset(a->bitmap, 0, h->bitmap_words * 8);
	memset(a->buckets, 0, h->nbuckets * 4);
	h->slot_top = 0;
	atomic_store(&h->used_bytes, 0);
	atomic_store(&h->dirty_bytes, 0);
	for (int i = 0; i < 5; i++)
		atomic_store(&h->nobj[i], 0);
	if (h->nlayouts > h->max_layouts)
		h->nlayouts = (uint32_t)h->max_layouts;
	for (uint32_t i = 0; i < h->nlayouts; i++)
		a->layouts[i].refs = 0;
	/* first the records whose fields are sound take their blocks, so that a
	 * record with impossible fields never wins an overlap against them */
	for (uint64_t s = h->max_objects; s-- > 0;) {
		struct l1_rec *r = &a->recs[s];
		uint32_t st = atomic_load(&r->state);
		if (live_or_dirty(st) && rec_fields_ok(a, r, st) && l1__extent_claim(a, r->offset, r->size) < 0)
			atomic_store(&r->state, L1_STATE_FREE);   /* untrustworthy: drop */
	}
	l1__dirty_rebuild(a);           /* then the dirty extents take theirs */
	/* walk down so the lowest slots end on top of the stack */
	for (uint64_t s = h->max_objects; s-- > 0;) {
		struct l1_rec *r = &a->recs[s];
		uint32_t st = atomic_load(&r->state);
		r->holds = 0;
		r->hold_head = 0;
		r->key_next = 0;
		r->flags &= ~(L1_REC_F_KEYED | L1_REC_F_MARK);
		if (live_or_dirty(st) && !rec_fields_ok(a, r, st)) {
			/* generation 0, a key too long, an unknown layout: no longer an
			 * object.  If its extent is its own, retire it like a freed one
			 * (zeroed before reuse); else drop it. */
			if (l1__extent_claim(a, r->offset, r->size) < 0) {
				st = L1_STATE_FREE;
			} else {
				r->gen += !r->gen;
				r->key_len = 0;
				r->key[0] = 0;
				r->zeroer_pid = 0;
				r->zeroer_start = 0;
				__atomic_store_n(&r->zeroer_client, 0, __ATOMIC_RELAXED);
				st = L1_STATE_DIRTY;
				if (!h->zero_on_free) {
					uint64_t b, n;
					l1__extent_blocks(a, r->offset, r->size, &b, &n);
					l1__bm_clear(a, b, n);
					st = L1_STATE_FREE;
				}
			}
			atomic_store(&r->state, st);
		}
		if (!live_or_dirty(st)) {
			atomic_store(&r->state, L1_STATE_FREE);
			atomic_fetch_add(&h->nobj[L1_STATE_FREE], 1);
			a->slots[h->slot_top++] = (uint32_t)s;
			continue;
		}
		atomic_fetch_add(&h->nobj[st], 1);
		if (st == L1_STATE_DIRTY) {
			atomic_fetch_add(&h->dirty_bytes, r->size);
		} else {
			atomic_fetch_add(&h->used_bytes, r->size);
			l1__layout_ref(a, r->layout_id, 1);
		}
		if (st == L1_STATE_PUBLISHED && r->key_len > 0 && r->key_len <= L1_KEY_MAX) {
			r->key_hash = l1__hash(r->key, r->key_len);
			if (l1__key_find(a, r->key, r->key_len) < 0) {
				l1__key_link(a, (uint32_t)s);
			} else {        /* a second record with that key: keep it, keyless */
				r->key_len = 0;
				r->key[0] = 0;
			}
		}
	}
	l1__bm_rebuild_summary(a);
	/* holds: keep entries that name a live record and the current use of
	 * a listed client slot (client tag); the clients counter is derived */
	uint64_t nholds = 0;
	uint32_t cs = 0;
	for (uint64_t c = 0; c < h->max_clients; c++) {
		struct l1_client *cl = &a->clients[c];
		cl->holds = 0;
		/* damage (an unknown state, generation 0): not a client.  A dead
		 * one stays for gc, which drops its holds and counts it */
		if (cl->state > L1_CLIENT_ANON || (cl->state != L1_CLIENT_FREE && !cl->gen))
			cl->state = L1_CLIENT_FREE;
	}
	l1__clients_recount(a);
	h->hold_free = 0;
	for (uint64_t i = h->max_holds; i-- > 0;) {
		struct l1_hold_ent *e = &a->holds[i];
		if (e->count && e->slot < h->max_objects && l1__tag_current(a, e->client, &cs) &&
		    a->clients[cs].state == L1_CLIENT_LIVE &&
		    live_or_dirty(atomic_load(&a->recs[e->slot].state)) &&
		    atomic_load(&a->recs[e->slot].state) != L1_STATE_DIRTY &&
		    /* the 32-bit sums must not wrap (a damaged count) */
		    (uint64_t)a->recs[e->slot].holds + e->count <= UINT32_MAX &&
		    (uint64_t)a->clients[cs].holds + e->count <= UINT32_MAX) {
			struct l1_rec *r = &a->recs[e->slot];
			e->next = r->hold_head;
			r->hold_head = (uint32_t)i + 1;
			r->holds += e->count;
			a->clients[cs].holds += e->count;
			nholds += e->count;
		} else {
			e->count = 0;
			e->next = (uint32_t)h->hold_free;
			h->hold_free = i + 1;
		}
	}
	atomic_store(&h->nholds, nholds);
	/* doomed records whose holders are gone: dirty, for gc to zero */
	for (uint64_t s = 0; s < h->max_objects; s++) {
		struct l1_rec *r = &a->recs[s];
		if (atomic_load(&r->state) != L1_STATE_DOOMED || r->holds)
			continue;
		if (h->zero_on_free) {
			r->zeroer_pid = 0;
			r->zeroer_start = 0;
			__atomic_store_n(&r->zeroer_client, 0, __ATOMIC_RELAXED);
			l1__rec_set_state(a, r, L1_STATE_DIRTY);
		} else {
			uint64_t b, n;
			l1__extent_blocks(a, r->offset, r->size, &b, &n);
			l1__bm_clear(a, b, n);
			l1__rec_set_state(a, r, L1_STATE_FREE);
			l1__slot_push(a, (uint32_t)s);
		}
	}
	h->search_hint = 0;             /* the lowest block that may be free */
}
