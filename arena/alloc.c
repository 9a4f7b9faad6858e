/*
 * alloc.c - the object API: allocate (all or nothing), free (the whole batch
 * checked before anything changes), publish, get/lookup, holds, and the
 * record views for tools.  Each call takes the pool lock once per batch.
 * When allocate finds no room it tries, in order: reclaiming what dead
 * processes left (gc), growing a lazy pool, and waiting (bounded) for
 * zeroing in flight, with gc again every half lease while nothing moves
 * (the extents of a stopped zeroer are then taken over); only then does it
 * report OUT_OF_MEMORY, with nothing changed.  Callers who have waited long
 * for room go first, in turn (turn.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Waiting for zeroing gives up after this long without progress (a busy
 * machine can slow the engines down, but not stop them), or this long in all. */
#define DIRTY_STALL_NS (5ull * 1000000000ull)
#define DIRTY_WAIT_MAX_NS (60ull * 1000000000ull)
/* A caller that found no room for this long takes a turn (turn.c). */
#define ROOM_STARVE_NS (50ull * 1000000ull)
/* Before growing: how long to wait for the zeroing of what gc reclaimed. */
#define GC_ZERO_WAIT_MS 2000

const char *l1_state_name(uint32_t s)
{
	static const char *names[] = { "free", "allocated", "published", "dirty", "doomed" };
	return s < 5 ? names[s] : "invalid";
}

static int layout_same(const struct l1_layout *a, const struct l1_layout *b)
{
	if (a->ntensors != b->ntensors)
		return 0;
	for (uint32_t i = 0; i < a->ntensors && i < L1_MAX_TENSORS; i++) {
		if (a->t[i].dtype != b->t[i].dtype || a->t[i].ndim != b->t[i].ndim)
			return 0;
		for (uint32_t d = 0; d < a->t[i].ndim && d < L1_MAX_DIMS; d++)
			if (a->t[i].shape[d] != b->t[i].shape[d])
				return 0;
	}
	return 1;
}

/* Under the pool lock: layout id, through this handle's one-entry cache
 * (valid while the slot's generation is the one cached). */
static int layout_id_of(struct l1_arena *a, const struct l1_layout *l, uint32_t *id)
{
	uint32_t gen;
	pthread_mutex_lock(&a->local);
	int hit = a->cache_layout_id != UINT32_MAX && layout_same(&a->cache_layout, l) &&
		  a->layouts[a->cache_layout_id].gen == a->cache_layout_gen;
	*id = a->cache_layout_id;
	pthread_mutex_unlock(&a->local);
	if (hit)
		return 0;
	int r = l1__layout_intern(a, l, id, &gen);
	if (r)
		return r;
	pthread_mutex_lock(&a->local);
	a->cache_layout = *l;
	a->cache_layout_id = *id;
	a->cache_layout_gen = gen;
	pthread_mutex_unlock(&a->local);
	return 0;
}

/* Under the lock: claims count runs of nblk blocks; 0, or -ENOMEM with
 * nothing claimed.  Placement is address-ordered first fit (it keeps free
 * space in fewer, longer runs than next fit when sizes mix and objects die
 * in another order than they came): each search starts at the lowest block
 * that may be free (search_hint: every block below it is taken; a release
 * lowers it).  Objects of one batch have one size, so a hole too small for
 * one is too small for the next, and the batch searches on from the last. */
static int claim_runs(struct l1_arena *a, uint64_t nblk, uint32_t count, uint64_t *starts)
{
	int p = l1__place_claim(a, nblk, count, starts);      /* large: best fit */
	if (p != -EAGAIN)
		return p;
	struct l1_hdr *h = a->h;
	uint64_t limit = l1__blocks_usable(h);
	uint64_t pos = l1__bm_next_zero(a, h->search_hint < limit ? h->search_hint : 0, limit);
	h->search_hint = pos;
	for (uint32_t i = 0; i < count; i++) {
		int64_t s = l1__bm_find(a, nblk, pos, limit);
		if (s < 0) {
			while (i-- > 0)
				l1__bm_clear(a, starts[i], nblk);
			return -ENOMEM;
		}
		l1__bm_set(a, (uint64_t)s, nblk);
		starts[i] = (uint64_t)s;
		pos = (uint64_t)s + nblk;
		if ((uint64_t)s == h->search_hint)
			h->search_hint = pos;
	}
	return 0;
}

static void write_records(struct l1_arena *a, uint32_t layout_id, uint64_t size,
			  uint64_t data_size, uint32_t count, const uint64_t *starts,
			  struct l1_obj *objs)
{
	struct l1_hdr *h = a->h;
	uint64_t now = l1__now_ns();
	uint32_t mode = h->mode & 0666;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t slot = l1__slot_pop_free(a);
		struct l1_rec *r = &a->recs[slot];
		r->gen = r->gen + 1 ? r->gen + 1 : 1;
		r->offset = h->data_off + starts[i] * h->block_size;
		r->size = size;
		r->data_size = data_size;
		r->layout_id = layout_id;
		r->holds = 0;
		r->hold_head = 0;
		r->owner_pid = a->pid;
		r->owner_start = a->start;
		r->owner_client = l1__client_tag(a);
		r->uid = a->uid;
		r->gid = a->pool_gid;       /* the pool's group: its readers */
		r->mode = mode;
		r->ctime_ns = now;
		r->publish_ns = 0;
		r->zeroer_pid = 0;
		r->zeroer_start = 0;
		__atomic_store_n(&r->zeroer_client, 0, __ATOMIC_RELAXED);
		r->key_len = 0;
		r->key[0] = 0;
		r->key_next = 0;
		r->flags = 0;
		l1__rec_set_state(a, r, L1_STATE_ALLOCATED);
		objs[i] = (struct l1_obj){ ((uint64_t)r->gen << 32) | slot, r->offset, size,
					   a->base + r->offset, h->pool_id, layout_id, 0,
					   data_size };
	}
	l1__ctr_add(&h->allocs, count);
}

/* Under the lock, runs claimed with help (zhelp.c): records, then, with
 * the lock dropped, the dirty bytes of the runs zeroed by this thread. */
static int helped(struct l1_arena *a, uint32_t layout_id, uint64_t size, uint64_t data_size,
		  uint32_t count, const uint64_t *starts, struct l1_obj *objs, struct l1_help *hp)
{
	if (a->test_hook)
		a->test_hook(a, L1_HOOK_ALLOC_CLAIMED);
	write_records(a, layout_id, size, data_size, count, starts, objs);
	l1__help_commit(a, hp);
	l1__unlock(a);
	l1__help_zero(a, hp);
	return 0;
}

/* Waits until dirty bytes drop below `seen` (or a short while); 0 if they did. */
static int wait_dirty_progress(struct l1_arena *a, uint64_t seen)
{
	if (a->zero)
		l1_zero_wait_progress(a->zero, 50);   /* some of ours finished */
	l1__fin_release_now(a);
	for (int i = 0; i < 50; i++) {
		if (atomic_load(&a->h->dirty_bytes) < seen)
			return 0;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return atomic_load(&a->h->dirty_bytes) < seen ? 0 : -EAGAIN;
}

static int alloc_check_args(struct l1_arena *a, const struct l1_layout *l,
			    uint32_t count, struct l1_obj *objs, uint64_t *size,
			    uint64_t *data_size)
{
	int r = l1__writable(a, "allocate");
	if (r)
		return r;
	if (!l || !objs)
		return l1__err(-EINVAL, "NULL argument to allocate");
	if (count == 0)
		return l1__err(-EINVAL, "count is 0: allocate at least one object");
	if (count > a->h->max_objects)
		return l1__err(-ENOSPC, "count %u exceeds the pool's object limit (%llu)",
			       count, (unsigned long long)a->h->max_objects);
	uint64_t bytes;
	r = l1_layout_bytes(l, &bytes);
	if (r)
		return r;
	uint64_t bs = a->h->block_size;
	if (bytes > a->h->nblocks * bs)
		return l1__err(-ENOMEM, "out of memory: an object of %llu bytes is larger than "
			       "the pool (%llu bytes usable); it can never fit",
			       (unsigned long long)bytes,
			       (unsigned long long)(a->h->nblocks * bs));
	if (bytes > a->h->grow_step)
		return l1__err(-EINVAL, "an object of %llu bytes is larger than the pool's grow "
			       "step (%llu bytes); objects must fit inside one step: create the "
			       "pool with a larger grow step", (unsigned long long)bytes,
			       (unsigned long long)a->h->grow_step);
	*size = (bytes + bs - 1) / bs * bs;
	*data_size = bytes;
	return 0;
}

int l1_alloc(struct l1_arena *a, const struct l1_layout *l, uint32_t count,
	     struct l1_obj *objs)
{
	uint64_t size = 0, data_size = 0, local[256], *starts = local;
	struct l1_help *hp = NULL;
	int r = alloc_check_args(a, l, count, objs, &size, &data_size);
	if (r)
		return r;
	if (a->client_pending) {        /* a tool's handle: its slot, now (manager.c) */
		if ((r = l1__client_take(a, 1)))
			return r;
		a->client_pending = 0;
	}
	l1__pin_catch_up(a);
	if (count > 256 && !(starts = malloc(count * sizeof *starts)))
		return l1__err(-ENOMEM, "out of process memory for a batch of %u", count);
	struct l1_hdr *h = a->h;
	uint64_t nblk = size / h->block_size, deadline = 0, give_up = 0, last_dirty = 0;
	uint64_t wait_from = 0;           /* when this call first waited for zeroing */
	uint64_t gc_ns = 0, first_miss = 0;
	int tried_grow = 0, tried_gc = 0;
	uint32_t layout_id;
	struct l1_turn turn = { 0 };
	for (;;) {
		if ((r = l1__lock(a)))
			goto out;
		if ((r = layout_id_of(a, l, &layout_id))) {
			l1__unlock(a);
			goto out;
		}
		/* callers who have waited long for room go first, in turn (turn.c) */
		if (!turn.have && l1__turn_starving(&h->mem_queue, ROOM_STARVE_NS))
			l1__turn_take(&h->mem_queue, &turn);
		if (!l1__turn_mine(&h->mem_queue, &turn)) {
			l1__unlock(a);
			l1__turn_wait(&h->mem_queue, &turn, 1000000);
			continue;
		}
		r = !l1__slots_ready(a, count) ? -ENOSPC : -EAGAIN;
		if (r == -EAGAIN && l1__help_prefer(a, nblk, count, starts, &hp) == 0) {
			r = helped(a, layout_id, size, data_size, count, starts, objs, hp);
			break;
		}
		if (r == -EAGAIN)
			r = claim_runs(a, nblk, count, starts);
		if (r == 0) {
			if (a->test_hook)
				a->test_hook(a, L1_HOOK_ALLOC_CLAIMED);
			write_records(a, layout_id, size, data_size, count, starts, objs);
			l1__unlock(a);
			break;
		}
		uint64_t now = l1__coarse_ns();
		if (!first_miss)
			first_miss = now;
		else if (now - first_miss >= ROOM_STARVE_NS)
			l1__turn_take(&h->mem_queue, &turn);
		/* growth comes after gc: what dead writers left is reused before
		 * more huge pages are taken */
		int may_grow = r == -ENOMEM && !tried_grow &&
			       l1__blocks_usable(h) < h->nblocks;
		if (may_grow && tried_gc) {
			int g = l1__grow(a, count * size);
			l1__unlock(a);
			if (g == 0) {
				l1__pin_catch_up(a);    /* before the new step is handed out */
				continue;
			}
			tried_grow = 1;
			continue;
		}
		/* no clean run: zero, in this thread, the dirty bytes of the
		 * run it takes rather than wait for the engine's queue */
		if (r == -ENOMEM && atomic_load(&h->dirty_bytes) &&
		    (tried_grow || l1__blocks_usable(h) >= h->nblocks)) {
			if (l1__help_claim(a, nblk, count, starts, &hp) == 0) {
				r = helped(a, layout_id, size, data_size, count, starts, objs, hp);
				break;
			}
			l1__help_commit(a, hp);         /* what it gave back */
		}
		/* what was dirty when the claim failed: if any of it is released by
		 * the time we look again, that is progress worth a retry */
		uint64_t dirty = atomic_load(&h->dirty_bytes);
		l1__unlock(a);
		/* gc at once, and again while the dirty bytes do not move for half
		 * a lease: a stopped process's extents become ours to zero */
		if (!gc_ns || (dirty >= last_dirty &&
			       l1__mono_ns() - gc_ns >= L1_LEASE_MS * 500000ull)) {
			gc_ns = l1__mono_ns();
			tried_gc = 1;
			struct l1_gc_result gr;
			if (l1_arena_gc(a, &gr) == 0 &&
			    (gr.objects_reclaimed || gr.dirty_requeued || gr.holds_dropped)) {
				if (may_grow && a->zero) {
					/* what gc handed to this engine is zeroed and
					 * released before more pages are taken */
					l1_zero_flush(a->zero, GC_ZERO_WAIT_MS);
					l1__fin_release_now(a);
				}
				continue;
			}
		}
		if (may_grow)
			continue;
		if (dirty) {
			uint64_t now = l1__mono_ns();
			if (!give_up)
				give_up = now + DIRTY_WAIT_MAX_NS;
			if (!deadline || dirty < last_dirty)
				deadline = now + DIRTY_STALL_NS;   /* progress: keep waiting */
			last_dirty = dirty;
			if (now < deadline && now < give_up) {
				if (!wait_from)
					wait_from = now;
				wait_dirty_progress(a, dirty);
				continue;
			}
		}
		atomic_fetch_add(&h->ooms, 1);
		if (r == -ENOSPC)
			r = l1__err(-ENOSPC, "object table full: %llu of %llu records in use "
				    "(%llu of them freed and awaiting zeroing); free objects or create "
				    "the pool with a larger --max-objects",
				    (unsigned long long)(h->max_objects - h->slot_top),
				    (unsigned long long)h->max_objects,
				    (unsigned long long)atomic_load(&h->nobj[L1_STATE_DIRTY]));
		else
			r = l1__err(-ENOMEM, "out of memory: %u x %llu bytes do not fit; used %llu "
				    "of %llu bytes, %llu dirty, %llu committed%s%s",
				    count, (unsigned long long)size,
				    (unsigned long long)atomic_load(&h->used_bytes),
				    (unsigned long long)h->data_size,
				    (unsigned long long)atomic_load(&h->dirty_bytes),
				    (unsigned long long)atomic_load(&h->committed),
				    atomic_load(&h->grow_failed) ? "; " : "",
				    atomic_load(&h->grow_failed) ? h->grow_reason : "");
		goto out;
	}
out:
	if (wait_from) {
		atomic_fetch_add(&h->zero_waits, 1);
		atomic_fetch_add(&h->zero_wait_ns, l1__mono_ns() - wait_from);
	}
	l1__turn_done(&h->mem_queue, &turn);
	if (starts != local)
		free(starts);
	free(hp);
	return r;
}

int l1_alloc_bytes(struct l1_arena *a, uint64_t bytes, uint32_t count, struct l1_obj *objs)
{
	struct l1_layout l;
	memset(&l, 0, sizeof l);
	l.ntensors = 1;
	l.t[0].dtype = L1_DTYPE_UINT8;
	l.t[0].ndim = 1;
	l.t[0].shape[0] = bytes;
	return l1_alloc(a, &l, count, objs);
}

/* ---- free -------------------------------------------------------------- */

/* Under the lock: checks every entry; slots[] gets the slots. */
static int free_check(struct l1_arena *a, const uint64_t *ids, const uint64_t *pools,
		      uint32_t count, uint32_t *slots)
{
	for (uint32_t i = 0; i < count; i++) {
		int r = l1__rec_check_id(a, ids[i], pools ? pools[i] : 0, &slots[i]);
		if (r == 0 && atomic_load(&a->recs[slots[i]].state) == L1_STATE_DOOMED)
			r = l1__err(-EALREADY, "object %llu was already freed (it waits for its "
				    "holds to go)", (unsigned long long)ids[i]);
		if (r == 0 && !l1__may_modify(a, &a->recs[slots[i]]))
			r = l1__err(-EPERM, "object %llu belongs to uid %u, not to this process "
				    "(uid %u): only its owner or root frees it",
				    (unsigned long long)ids[i], a->recs[slots[i]].uid, a->uid);
		if (r) {
			char msg[400];
			snprintf(msg, sizeof msg, "%s", l1_last_error());
			return l1__err(r, "entry %u of the batch: %s; nothing was freed", i, msg);
		}
	}
	/* duplicates: mark, then unmark */
	int dup = -1;
	for (uint32_t i = 0; i < count; i++) {
		struct l1_rec *r = &a->recs[slots[i]];
		if (r->flags & L1_REC_F_MARK) {
			dup = (int)i;
			count = i;
			break;
		}
		r->flags |= L1_REC_F_MARK;
	}
	for (uint32_t i = 0; i < count; i++)
		a->recs[slots[i]].flags &= ~L1_REC_F_MARK;
	if (dup >= 0)
		return l1__err(-EINVAL, "entry %d of the batch names object %llu a second time "
			       "(a batch lists each object once); nothing was freed", dup,
			       (unsigned long long)ids[dup]);
	return 0;
}

static int free_impl(struct l1_arena *a, const uint64_t *ids, const uint64_t *pools,
		     uint32_t count)
{
	uint32_t local[256], *slots = local;
	struct l1_zero_extent q[L1_ZQ_MAX], iq[L1_ZQ_MAX];
	uint32_t nq = 0, niq = 0;
	int r = l1__writable(a, "free");
	if (r)
		return r;
	if (count == 0)
		return 0;
	if (count > 256 && !(slots = malloc(count * sizeof *slots)))
		return l1__err(-ENOMEM, "out of process memory for a batch of %u", count);
	if ((r = l1__lock(a)))
		goto out;
	if ((r = free_check(a, ids, pools, count, slots))) {
		l1__unlock(a);
		goto out;
	}
	for (uint32_t i = 0; i < count; i++) {
		struct l1_rec *rec = &a->recs[slots[i]];
		if (a->test_hook && i == count / 2)
			a->test_hook(a, L1_HOOK_FREE_MID);
		if (rec->holds) {
			l1__key_unlink(a, slots[i]);
			l1__rec_set_state(a, rec, L1_STATE_DOOMED);
		} else {
			l1__rec_retire(a, slots[i], q, &nq);
		}
		/* before q fills (l1__zero_push would hand all of it to the
		 * engine): a batch of separate small objects is zeroed here like
		 * one small object, as far as iq holds */
		if (nq == L1_ZQ_MAX - 1)
			l1__zero_at_free(a, q, &nq, iq, &niq);
	}
	l1__ctr_add(&a->h->frees, count);
	l1__zero_at_free(a, q, &nq, iq, &niq);
	l1__unlock(a);
	l1__zero_inline_finish(a, iq, niq);
out:
	if (slots != local)
		free(slots);
	return r;
}

int l1_free(struct l1_arena *a, const struct l1_obj *objs, uint32_t count)
{
	uint64_t ids_l[128], pools_l[128], *ids = ids_l, *pools = pools_l;
	int r = l1__handle_check(a);
	if (r)
		return r;
	if (!objs && count)
		return l1__err(-EINVAL, "NULL argument to free");
	if (count > 128) {
		ids = malloc(count * sizeof *ids);
		pools = malloc(count * sizeof *pools);
		if (!ids || !pools) {
			r = l1__err(-ENOMEM, "out of process memory for a batch of %u", count);
			goto out;
		}
	}
	for (uint32_t i = 0; i < count; i++) {
		ids[i] = objs[i].id;
		pools[i] = objs[i].pool_id;
		if (!pools[i]) {
			r = l1__err(-EXDEV, "entry %u of the batch has no pool id (not an object "
				    "from l1_alloc); nothing was freed", i);
			goto out;
		}
	}
	r = free_impl(a, ids, pools, count);
out:
	if (ids != ids_l)
		free(ids);
	if (pools != pools_l)
		free(pools);
	return r;
}

int l1_free_ids(struct l1_arena *a, const uint64_t *ids, uint32_t count)
{
	int r = l1__handle_check(a);
	if (r)
		return r;
	if (!ids && count)
		return l1__err(-EINVAL, "NULL argument to free");
	return free_impl(a, ids, NULL, count);
}

/* ---- publish, find, hold ----------------------------------------------- */

static int key_arg(const char *key, uint32_t *len)
{
	size_t n = key ? strnlen(key, L1_KEY_MAX + 1) : 0;
	if (n > L1_KEY_MAX)
		return l1__err(-EINVAL, "key longer than %d bytes", L1_KEY_MAX);
	*len = (uint32_t)n;
	return 0;
}

int l1_publish(struct l1_arena *a, uint64_t id, const char *key)
{
	uint32_t len = 0, slot;
	int r = l1__writable(a, "publish");
	if (r)
		return r;
	if ((r = key_arg(key, &len)))
		return r;
	if ((r = l1__lock(a)))
		return r;
	if ((r = l1__rec_check_id(a, id, 0, &slot)))
		goto out;
	struct l1_rec *rec = &a->recs[slot];
	uint32_t st = atomic_load(&rec->state);
	if (st != L1_STATE_ALLOCATED) {
		r = l1__err(st == L1_STATE_PUBLISHED ? -EEXIST : -EALREADY,
			    "object %llu is %s, not allocated: only a new object can be published",
			    (unsigned long long)id, l1_state_name(st));
		goto out;
	}
	if (!l1__may_modify(a, rec)) {
		r = l1__err(-EPERM, "object %llu belongs to uid %u, not to this process (uid "
			    "%u): only its owner or root publishes it", (unsigned long long)id,
			    rec->uid, a->uid);
		goto out;
	}
	if (len) {
		int64_t other = l1__key_find(a, key, len);
		if (other >= 0) {
			r = l1__err(-EEXIST, "key '%s' is already published (object %llu)", key,
				    (unsigned long long)(((uint64_t)a->recs[other].gen << 32) |
							 (uint64_t)other));
			goto out;
		}
		memcpy(rec->key, key, len);
		rec->key[len] = 0;
		rec->key_len = len;
		rec->key_hash = l1__hash(key, len);
		l1__key_link(a, slot);
		if (a->test_hook)
			a->test_hook(a, L1_HOOK_PUBLISH);
	}
	rec->publish_ns = l1__now_ns();
	l1__rec_set_state(a, rec, L1_STATE_PUBLISHED);
out:
	l1__unlock(a);
	return r;
}

/* The pool lock; a read-only handle cannot take it (the mutex lies in the
 * file it may not write): its calls only read, without it, and check with
 * read_stable that the record stayed the same object in the same state
 * while they read it; a read that races a change may miss (-ENOENT,
 * -ESTALE), never return a mix of two objects. */
static int read_lock(struct l1_arena *a)
{
	return a->readonly ? 0 : l1__lock(a);
}

static void read_unlock(struct l1_arena *a)
{
	if (!a->readonly)
		l1__unlock(a);
}

static int read_stable(struct l1_arena *a, uint32_t slot, uint32_t gen, uint32_t state)
{
	struct l1_rec *r = &a->recs[slot];
	atomic_thread_fence(memory_order_acquire);
	if (!a->readonly || (atomic_load(&r->state) == state &&
			     __atomic_load_n(&r->gen, __ATOMIC_RELAXED) == gen))
		return 0;
	return l1__err(-ESTALE, "object %llu changed while this read-only handle read it: "
		       "look it up again", (unsigned long long)(((uint64_t)gen << 32) | slot));
}

/* Under read_lock: the read check (guard.c), then the object; gen is the
 * generation asked for (0: whichever the slot holds now). */
static int read_obj(struct l1_arena *a, uint32_t slot, uint32_t gen, struct l1_obj *out)
{
	struct l1_rec *r = &a->recs[slot];
	uint32_t st = atomic_load_explicit(&r->state, memory_order_acquire);
	if (!gen)
		gen = __atomic_load_n(&r->gen, __ATOMIC_RELAXED);
	if (st == L1_STATE_DOOMED)
		return l1__err(-EALREADY, "object %llu was freed",
			       (unsigned long long)(((uint64_t)gen << 32) | slot));
	if (!l1__may_read(a, r))
		return l1__err(-EACCES, "object %llu (uid %u, gid %u, mode %04o) is not readable "
			       "by this process (uid %u)",
			       (unsigned long long)(((uint64_t)gen << 32) | slot), r->uid, r->gid,
			       r->mode, a->uid);
	if (out)
		l1__rec_fill_obj(a, slot, out);
	return read_stable(a, slot, gen, st);
}

int l1_get(struct l1_arena *a, uint64_t id, struct l1_obj *out)
{
	uint32_t slot;
	int r = l1__handle_check(a);
	if (r)
		return r;
	if (!out)
		return l1__err(-EINVAL, "NULL argument");
	l1__pin_catch_up(a);
	if ((r = read_lock(a)))
		return r;
	r = l1__rec_check_id(a, id, 0, &slot);
	if (r == 0)
		r = read_obj(a, slot, (uint32_t)(id >> 32), out);
	read_unlock(a);
	return r;
}

static int find_key(struct l1_arena *a, const char *key, uint32_t *slot)
{
	uint32_t len = 0;
	int r = key_arg(key, &len);
	if (r)
		return r;
	if (!len)
		return l1__err(-EINVAL, "empty key");
	int64_t s = l1__key_find(a, key, len);
	if (s < 0)
		return l1__err(-ENOENT, "no object is published under key '%s'", key);
	*slot = (uint32_t)s;
	return 0;
}

int l1_lookup(struct l1_arena *a, const char *key, struct l1_obj *out)
{
	uint32_t slot;
	int r = l1__handle_check(a);
	if (r)
		return r;
	if (!out)
		return l1__err(-EINVAL, "NULL argument");
	l1__pin_catch_up(a);
	if ((r = read_lock(a)))
		return r;
	if ((r = find_key(a, key, &slot)) == 0 && (r = read_obj(a, slot, 0, out)) == 0 &&
	    a->readonly && strncmp(a->recs[slot].key, key, L1_KEY_MAX + 1))
		r = l1__err(-ENOENT, "key '%s' changed hands while this read-only handle "
			    "looked it up: look it up again", key);
	read_unlock(a);
	return r;
}

static int hold_slot(struct l1_arena *a, uint32_t slot, struct l1_obj *out)
{
	int r = read_obj(a, slot, 0, NULL);     /* under the lock: no race */
	if (r)
		return r;
	r = l1__hold_add(a, slot, a->client_tag);
	if (r == 0 && out)
		l1__rec_fill_obj(a, slot, out);
	return r;
}

static int hold_prologue(struct l1_arena *a)
{
	int r = l1__handle_check(a);
	if (r)
		return r;
	if (a->readonly)
		return l1__err(-EPERM, "cannot hold: this handle is read-only, and a hold is "
			       "written into the pool file; hold through the view instead "
			       "(l1_open_path on MOUNT/objects/ID or MOUNT/keys/KEY: the view "
			       "keeps the object while that file is open), or attach read-write");
	if (a->client_idx == UINT32_MAX || a->client_anon)
		return l1__err(-EINVAL, "this handle has no client slot: holds need one "
			       "(attach without no_client)");
	l1__pin_catch_up(a);
	return l1__lock(a);
}

int l1_hold(struct l1_arena *a, uint64_t id, struct l1_obj *out)
{
	uint32_t slot;
	int r = hold_prologue(a);
	if (r)
		return r;
	if ((r = l1__rec_check_id(a, id, 0, &slot)) == 0)
		r = hold_slot(a, slot, out);
	l1__unlock(a);
	return r;
}

int l1_hold_key(struct l1_arena *a, const char *key, struct l1_obj *out)
{
	uint32_t slot;
	int r = hold_prologue(a);
	if (r)
		return r;
	if ((r = find_key(a, key, &slot)) == 0)
		r = hold_slot(a, slot, out);
	l1__unlock(a);
	return r;
}

int l1_release(struct l1_arena *a, uint64_t id)
{
	uint32_t slot, nq = 0, niq = 0;
	struct l1_zero_extent q[L1_ZQ_MAX], iq[L1_ZQ_MAX];
	int r = l1__handle_check(a);
	if (r)
		return r;
	if (a->readonly)
		return l1__view_release(a, id);
	if (a->client_idx == UINT32_MAX || a->client_anon)
		return l1__err(-EINVAL, "this handle has no client slot and holds nothing");
	if ((r = l1__lock(a)))
		return r;
	if ((r = l1__rec_check_id(a, id, 0, &slot)))
		goto out;
	if ((r = l1__hold_drop(a, slot, a->client_tag, 1)))
		goto out;
	struct l1_rec *rec = &a->recs[slot];
	if (rec->holds == 0 && atomic_load(&rec->state) == L1_STATE_DOOMED)
		l1__rec_retire(a, slot, q, &nq);
	l1__zero_at_free(a, q, &nq, iq, &niq);
out:
	l1__unlock(a);
	l1__zero_inline_finish(a, iq, niq);
	return r;
}

/* ---- views for tools --------------------------------------------------- */

static void fill_info(struct l1_arena *a, uint32_t slot, struct l1_obj_info *o)
{
	struct l1_rec *r = &a->recs[slot];
	memset(o, 0, sizeof *o);
	l1__rec_fill_obj(a, slot, &o->obj);
	o->state = atomic_load(&r->state);
	o->holds = r->holds;
	o->owner_pid = r->owner_pid;
	o->uid = r->uid;
	o->gid = r->gid;
	o->mode = r->mode;
	o->owner_start = r->owner_start;
	o->ctime_ns = r->ctime_ns;
	o->publish_ns = r->publish_ns;
	uint32_t n = r->key_len <= L1_KEY_MAX ? r->key_len : 0;
	memcpy(o->key, r->key, n);
	o->key[n] = 0;
}

int l1_obj_info(struct l1_arena *a, uint64_t id, struct l1_obj_info *out)
{
	int r = l1__handle_check(a);
	if (r)
		return r;
	if (!out)
		return l1__err(-EINVAL, "NULL argument");
	uint64_t s = id & 0xffffffffull;
	if (s >= a->h->max_objects || (id >> 32) == 0)
		return l1__err(-ENOENT, "no object %llu in this pool", (unsigned long long)id);
	if ((r = read_lock(a)))
		return r;
	struct l1_rec *rec = &a->recs[s];
	uint32_t st = atomic_load(&rec->state);
	if (rec->gen != (uint32_t)(id >> 32) || st == L1_STATE_FREE)
		r = l1__err(-ENOENT, "no object %llu in this pool", (unsigned long long)id);
	else {
		fill_info(a, (uint32_t)s, out);
		r = read_stable(a, (uint32_t)s, (uint32_t)(id >> 32), st);
	}
	read_unlock(a);
	return r;
}

int l1_obj_list(struct l1_arena *a, uint64_t *cursor, struct l1_obj_info *out, uint32_t max)
{
	int r = l1__handle_check(a);
	if (r)
		return r;
	if (!cursor || (!out && max))
		return l1__err(-EINVAL, "NULL argument");
	if ((r = read_lock(a)))     /* read-only: a listing of the moment, unchecked */
		return r;
	uint32_t n = 0;
	uint64_t s = *cursor;
	for (; s < a->h->max_objects && n < max; s++)
		if (atomic_load_explicit(&a->recs[s].state, memory_order_relaxed) != L1_STATE_FREE)
			fill_info(a, (uint32_t)s, &out[n++]);
	*cursor = s;
	read_unlock(a);
	return (int)n;
}

int l1_obj_chmod(struct l1_arena *a, uint64_t id, uint32_t uid, uint32_t gid, uint32_t mode)
{
	uint32_t slot;
	int r = l1__writable(a, "change an object's owner or mode");
	if (r)
		return r;
	if (mode > 07777)
		return l1__err(-EINVAL, "mode %o out of range", mode);
	if ((r = l1__lock(a)))
		return r;
	if ((r = l1__rec_check_id(a, id, 0, &slot)) == 0) {
		struct l1_rec *rec = &a->recs[slot];
		if (!l1__may_modify(a, rec) || (a->uid != 0 && uid != a->uid))
			r = l1__err(-EPERM, "only the owner or root changes object %llu",
				    (unsigned long long)id);
		else {
			rec->uid = uid;
			rec->gid = gid;
			rec->mode = mode;
		}
	}
	l1__unlock(a);
	return r;
}

int l1_obj_set_data_size(struct l1_arena *a, uint64_t id, uint64_t bytes)
{
	uint32_t slot;
	int r = l1__writable(a, "change an object's data size");
	if (r)
		return r;
	if ((r = l1__lock(a)))
		return r;
	if ((r = l1__rec_check_id(a, id, 0, &slot)) == 0) {
		struct l1_rec *rec = &a->recs[slot];
		if (!l1__may_modify(a, rec))
			r = l1__err(-EPERM, "only the owner or root changes object %llu",
				    (unsigned long long)id);
		else if (atomic_load(&rec->state) != L1_STATE_ALLOCATED)
			r = l1__err(-EBUSY, "object %llu is %s: only an unpublished object's "
				    "data size can change", (unsigned long long)id,
				    l1_state_name(atomic_load(&rec->state)));
		else if (bytes == 0 || bytes > rec->size)
			r = l1__err(-EINVAL, "data size %llu for object %llu: it must be 1 to "
				    "%llu (its physical size)", (unsigned long long)bytes,
				    (unsigned long long)id, (unsigned long long)rec->size);
		else
			rec->data_size = bytes;
	}
	l1__unlock(a);
	return r;
}
