/*
 * internal.h - what the arena modules share and nobody outside arena/ sees:
 * the per-process handle (struct l1_arena), the error helper, and each
 * module's internal calls.  The handle's pointers point into this process's
 * mapping; `local` (a process-private mutex) guards the handle's own mutable
 * fields (pin progress, layout cache); the pool's shared state is guarded by
 * the robust mutex in the header (lock.c), which also guards popping the
 * finished ring (fin_head); its pushing end (fin_tail) belongs to the zeroing
 * engine's thread (release.c).
 */
#ifndef L1_INTERNAL_H
#define L1_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "format.h"
#include "zero.h"
#include "l1arena.h"

struct l1_zero;
struct l1_pin;

struct l1_arena {
	int fd;
	int readonly;
	uint8_t *base;
	uint64_t map_size;
	struct l1_hdr *h;
	struct l1_rec *recs;
	struct l1_layout_slot *layouts;
	uint32_t *buckets;
	uint64_t *bitmap;
	uint64_t *summary;
	struct l1_hold_ent *holds;
	uint32_t *slots;
	struct l1_client *clients;
	struct l1_dirty_ent *dirty;     /* NULL when max_dirty is 0 */
	uint32_t *dirty_stack;
	uint64_t dirty_limit;           /* tests only: entries this handle may fill */

	char path[L1_PATH_MAX];
	int32_t pid;
	uint64_t start;                 /* this process's start time */
	uint32_t uid, gid;
	uint32_t client_idx;            /* UINT32_MAX: no slot */

	pthread_mutex_t local;
	struct l1_zero *zero;
	struct l1_pin *pin;
	int32_t pin_mode;
	int32_t pin_mapped;
	uint64_t pinned_upto;           /* data bytes handed to pin so far */
	uint32_t cache_layout_id;       /* last interned layout, or UINT32_MAX */
	uint32_t cache_layout_gen;      /* its slot's generation then */
	struct l1_layout cache_layout;

	_Atomic uint64_t zero_busy_seen;  /* engine busy_ns already counted */

	/* the finished ring (release.c): zeroed extents awaiting release */
	struct l1_fin_ent *fin;         /* L1_FIN_CAP entries; NULL: no engine */
	_Alignas(64) _Atomic uint64_t fin_tail;  /* engine thread only */
	uint64_t fin_seen_seq;          /* engine thread only: lock_seq last seen */
	uint64_t fin_check_ns;          /* engine thread only */
	_Alignas(64) _Atomic uint64_t fin_head;  /* under the pool lock only */
	_Atomic uint64_t lock_seq;      /* pool locks taken by this process */

	/* zhelp.c: who zeroes each dirty-table entry, and what the threads
	 * that allocate and free zeroed themselves */
	_Atomic uint64_t *help;         /* max_dirty words: gen << 2 | state */
	_Atomic uint64_t help_bytes;    /* by allocating threads */
	_Atomic uint64_t inline_bytes;  /* by freeing threads */
	uint64_t zinline_max;           /* under the pool lock */
	uint64_t zinline_checked;

	/* tests only (l1arena_test.h): called at named points inside the lock */
	void (*test_hook)(struct l1_arena *a, int where);
};

/* util.c */
int l1__err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t l1__now_ns(void);
uint64_t l1__mono_ns(void);
int l1__proc_start(int32_t pid, uint64_t *start);
int l1__proc_alive(int32_t pid, uint64_t start);
uint64_t l1__hash(const void *p, uint64_t n);
uint64_t l1__random64(void);

/* lock.c: 0, or -EIO if the lock cannot be had.  Repairs after EOWNERDEAD. */
int l1__lock_init(struct l1_hdr *h);
int l1__lock(struct l1_arena *a);
void l1__unlock(struct l1_arena *a);

/* bitmap.c: run search and claim over the shared bitmap (see bitmap.c). */
int64_t l1__bm_find(struct l1_arena *a, uint64_t nblk, uint64_t from, uint64_t limit);
uint64_t l1__bm_next_zero(const struct l1_arena *a, uint64_t pos, uint64_t limit);
void l1__bm_set(struct l1_arena *a, uint64_t start, uint64_t n);
void l1__bm_clear(struct l1_arena *a, uint64_t start, uint64_t n);
int l1__bm_test_any(const struct l1_arena *a, uint64_t start, uint64_t n);
uint64_t l1__bm_largest_free(const struct l1_arena *a, uint64_t limit);
void l1__bm_rebuild_summary(struct l1_arena *a);

/* place.c: best fit for large batches; -EAGAIN: use first fit. */
int l1__place_claim(struct l1_arena *a, uint64_t nblk, uint32_t count, uint64_t *starts);
int64_t l1__place_best(struct l1_arena *a, uint64_t n, uint64_t *run_len);
int l1__place_large(struct l1_arena *a, uint64_t nblk, uint32_t count);
uint64_t l1__bm_run_end(const struct l1_arena *a, uint64_t b, uint64_t hi);
uint64_t l1__bm_run_start(const struct l1_arena *a, uint64_t b, uint64_t lo);

/* layout.c */
int l1__layout_intern(struct l1_arena *a, const struct l1_layout *l, uint32_t *id,
		      uint32_t *gen);
void l1__layout_ref(struct l1_arena *a, uint32_t id, int32_t d);

/* objects.c: records, slots, key index, holds; all under the lock. */
uint32_t l1__slot_pop(struct l1_arena *a);
uint32_t l1__slot_pop_free(struct l1_arena *a);
void l1__ctr_add(_Atomic uint64_t *c, int64_t d);    /* under the lock only */
void l1__slot_push(struct l1_arena *a, uint32_t slot);
int l1__slots_ready(struct l1_arena *a, uint32_t count);
int l1__rec_check_id(struct l1_arena *a, uint64_t id, uint64_t pool_id, uint32_t *slot);
void l1__key_link(struct l1_arena *a, uint32_t slot);
void l1__key_unlink(struct l1_arena *a, uint32_t slot);
int64_t l1__key_find(struct l1_arena *a, const char *key, uint32_t len);
int l1__hold_add(struct l1_arena *a, uint32_t slot, uint32_t client);
int l1__hold_drop(struct l1_arena *a, uint32_t slot, uint32_t client, uint32_t n);
uint64_t l1__holds_drop_client(struct l1_arena *a, uint32_t client,
			       uint32_t *released, uint32_t *nreleased, uint32_t max);
void l1__rec_fill_obj(const struct l1_arena *a, uint32_t slot, struct l1_obj *o);
void l1__rec_set_state(struct l1_arena *a, struct l1_rec *r, uint32_t state);

#include "l1arena_test.h"

/* release.c: what happens when an object stops being live. */
#define L1_ZQ_MAX 64
#define L1_FIN_CAP 4096u                /* finished ring entries */
#define L1_FIN_BUSY_NS 4000000ull       /* busy engine: look at the owner this often */
struct l1_fin_ent {
	uint32_t slot, gen;             /* the engine's cookie */
};
/* Frees a live record whose holds are 0: DIRTY (queued in *q) or FREE. */
void l1__rec_retire(struct l1_arena *a, uint32_t slot, struct l1_zero_extent *q,
		    uint32_t *nq);
void l1__zero_done(void *ctx, const struct l1_zero_extent *e, uint32_t n);
int l1__zero_idle(void *ctx);
void l1__fin_release(struct l1_arena *a);       /* under the lock */
void l1__fin_release_now(struct l1_arena *a);   /* takes the lock if needed */
void l1__zero_queue(struct l1_arena *a, const struct l1_zero_extent *q, uint32_t n);
void l1__zero_push(struct l1_arena *a, struct l1_zero_extent *q, uint32_t *nq,
		   struct l1_zero_extent x);

/* dirty.c: the dirty-extent table (under the lock).  Engine cookies of
 * its entries are (index | L1_ZX_TABLE, gen); of DIRTY records (slot, gen). */
#define L1_ZX_TABLE 0x80000000u
int l1__dirty_add(struct l1_arena *a, uint64_t offset, uint64_t size, int32_t zeroer_pid,
		  uint64_t zeroer_start, struct l1_zero_extent *x);
int l1__dirty_extend(struct l1_arena *a, struct l1_zero_extent *x, uint64_t offset,
		     uint64_t size);
struct l1_dirty_ent *l1__dirty_of(struct l1_arena *a, uint32_t slot, uint32_t gen);
uint64_t l1__dirty_release(struct l1_arena *a, uint32_t slot, uint32_t gen);
void l1__dirty_rebuild(struct l1_arena *a);
void l1__dirty_takeover(struct l1_arena *a, int (*take)(void *, const struct l1_dirty_ent *),
			void *ctx, struct l1_zero_extent *q, uint32_t *nq, uint64_t *taken);

/* zhelp.c: zeroing by allocating and freeing threads (see zhelp.c). */
#define L1_HELP_MAX 128                 /* dirty pieces one allocation clears */
struct l1_help_piece {
	uint64_t off, len;
};
struct l1_help {
	uint32_t np, nrq;
	struct l1_help_piece p[L1_HELP_MAX];
	struct l1_zero_extent rq[L1_HELP_MAX * 2];
};
int l1__help_init(struct l1_arena *a);
void l1__help_queued(struct l1_arena *a, const struct l1_zero_extent *q, uint32_t n);
int l1__zero_claim(void *ctx, const struct l1_zero_extent *x);
int l1__help_claim(struct l1_arena *a, uint64_t nblk, uint32_t count, uint64_t *starts,
		   struct l1_help *hp);
int l1__help_prefer(struct l1_arena *a, uint64_t nblk, uint32_t count, uint64_t *starts,
		    struct l1_help *hp);
void l1__help_commit(struct l1_arena *a, struct l1_help *hp);
void l1__help_zero(struct l1_arena *a, struct l1_help *hp);
void l1__zero_inline_pick(struct l1_arena *a, struct l1_zero_extent *q, uint32_t *nq,
			  struct l1_zero_extent *iq, uint32_t *niq);
void l1__zero_inline_finish(struct l1_arena *a, const struct l1_zero_extent *iq, uint32_t n);

/* gc.c */
void l1__requeue_orphans(struct l1_arena *a);

/* check.c */
void l1__rebuild(struct l1_arena *a);
int l1__rec_geometry_ok(const struct l1_arena *a, const struct l1_rec *r);
int l1__extent_ok(const struct l1_arena *a, uint64_t offset, uint64_t size);
int l1__extent_claim(struct l1_arena *a, uint64_t offset, uint64_t size);
void l1__extent_blocks(const struct l1_arena *a, uint64_t offset, uint64_t size, uint64_t *b,
		       uint64_t *n);
int l1__validate_header(const struct l1_hdr *h, uint64_t file_size);

/* backing.c */
int l1__backing_statfs(const char *path, uint64_t *hugepage_size, int *is_hugetlbfs);
int l1__backing_commit(int fd, uint64_t off, uint64_t len);
int l1__find_hugetlbfs(uint64_t page_size, char *out, size_t len);
int l1__grow(struct l1_arena *a, uint64_t need_bytes);

/* manager.c */
void l1__pin_sync(struct l1_arena *a);
/* Before handing out a pointer: register steps committed since last time
 * (by this process or another), and the first time in L1_PIN_DEFER mode. */
static inline void l1__pin_catch_up(struct l1_arena *a)
{
	if (a->pin_mode != L1_PIN_OFF &&
	    __atomic_load_n(&a->pinned_upto, __ATOMIC_RELAXED) <
		    atomic_load_explicit(&a->h->committed, memory_order_acquire))
		l1__pin_sync(a);
}
void l1__client_refresh(struct l1_arena *a);

#endif
