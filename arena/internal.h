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
#include <time.h>

#include "format.h"
#include "zero.h"
#include "l1arena.h"

struct l1_zero;
struct l1_pin;
struct l1_view_hold;

struct l1_arena {
	int fd;
	int readonly;                   /* O_RDONLY, PROT_READ: guard.c refuses writes */
	int moved;                      /* create moved the pool to /dev/shm (shm_path) */
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
	int32_t pid;                    /* the process that opened the handle */
	uint32_t fork_gen;              /* l1__fork_gen when opened (see guard.c) */
	uint32_t pool_gid;              /* the pool file's group at attach: new
					 * objects' group (as in a setgid dir) */
	uint32_t ngroups;               /* supplementary groups, for read checks */
	uint32_t groups[32];
	uint64_t start;                 /* this process's start time */
	uint32_t uid, gid;
	uint32_t client_idx;            /* UINT32_MAX: no slot */
	uint32_t client_tag;            /* slot | gen << L1_CLIENT_BITS; 0: none */
	int client_anon;                /* attached with no_client: no holds */
	int client_pending;             /* no_client, and the lock was held too long at
					 * attach: the slot is taken at the first alloc */
	struct l1_arena *reg_next;      /* client.c: the handles of this process */

	pthread_mutex_t local;
	struct l1_view_hold *view_holds;        /* read-only handles (viewpath.c) */
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

	/* zhelp.c: what the threads that allocate and free zeroed themselves */
	_Atomic uint64_t help_bytes;    /* by allocating threads */
	_Atomic uint64_t inline_bytes;  /* by freeing threads */
	uint64_t zinline_max;           /* under the pool lock (zfree.c) */
	uint64_t zbacklog;
	uint64_t zinline_checked;

	/* tests only (l1arena_test.h): called at named points inside the lock */
	void (*test_hook)(struct l1_arena *a, int where);
};

/* guard.c: who may call what on this handle.  l1__handle_check: 0, or
 * -EINVAL (NULL) / -EBADF (inherited across fork) with a sentence. */
extern _Atomic uint32_t l1__fork_gen;
void l1__guard_init(struct l1_arena *a);
int l1__handle_bad(const struct l1_arena *a);
static inline int l1__handle_check(const struct l1_arena *a)
{
	if (a && a->fork_gen == atomic_load_explicit(&l1__fork_gen, memory_order_relaxed))
		return 0;
	return l1__handle_bad(a);
}
/* The handle check, then -EPERM with a sentence on a read-only handle. */
int l1__writable(const struct l1_arena *a, const char *what);
/* Accident checks (not a wall: see README, Trust): may this process free,
 * publish or change the record / read it (lookup, get, hold)? */
int l1__may_modify(const struct l1_arena *a, const struct l1_rec *r);
int l1__may_read(const struct l1_arena *a, const struct l1_rec *r);

/* viewpath.c: the holds of a read-only handle, taken through the view */
int l1__view_release(struct l1_arena *a, uint64_t id);
void l1__view_release_all(struct l1_arena *a);

/* util.c */
int l1__err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t l1__now_ns(void);
uint64_t l1__mono_ns(void);
int l1__proc_start(int32_t pid, uint64_t *start);     /* for display only */
uint64_t l1__hash(const void *p, uint64_t n);
uint64_t l1__random64(void);

/* client.c: the client table and liveness (see there).  A live-set caches
 * one pass's answers per slot; pass NULL to ask afresh. */
#define L1_LEASE_MS 2000u               /* a stalled zeroer keeps its extents this long */
struct l1_live {
	uint8_t known[L1_MAX_CLIENTS];  /* 0 not asked, 1 alive, 2 dead */
};
uint32_t l1__now_ms32(void);
uint32_t l1__client_tag(const struct l1_arena *a);
void l1__live_init(struct l1_live *lv);
int l1__live_slot(struct l1_arena *a, struct l1_live *lv, uint32_t slot);
int l1__tag_current(const struct l1_arena *a, uint32_t tag, uint32_t *slot);
int l1__live_tag(struct l1_arena *a, struct l1_live *lv, uint32_t tag);
int l1__tag_stalled(struct l1_arena *a, uint32_t tag);
void l1__client_beat(struct l1_arena *a);
uint64_t l1__clients_live(const struct l1_arena *a);
void l1__clients_recount(struct l1_arena *a);
int l1__client_take(struct l1_arena *a, int anon);
void l1__client_release(struct l1_arena *a);
void l1__handle_register(struct l1_arena *a);
void l1__handle_unregister(struct l1_arena *a);

/* lock.c: 0; -ETIMEDOUT (the error names the holder) after the bound
 * (l1__lock_bound_ms, or bound_ms); -EIO if the lock cannot be had.
 * Repairs after EOWNERDEAD. */
int l1__lock_init(struct l1_hdr *h);
int l1__lock(struct l1_arena *a);
int l1__lock_within(struct l1_arena *a, uint64_t bound_ms);
void l1__unlock(struct l1_arena *a);
uint64_t l1__lock_bound_ms(void);
/* Who holds the lock now (read without it): 1 and the holder, or 0. */
int l1__lock_holder(struct l1_arena *a, int32_t *pid, int32_t *tid, const char **state,
		    uint64_t *held_ns);
/* "held by pid P (thread T, STATE) for S s" (the time when known), or "free". */
void l1__lock_describe(int32_t pid, int32_t tid, const char *state, uint64_t held_ns,
		       char *buf, size_t len);

/* turn.c: fair turns for long waiters (see turn.c).  A thread's place in a
 * queue: no ticket (have 0), or its ticket and the serving value it last saw. */
#define L1_TURN_SKIP_NS (200ull * 1000000ull)   /* a turn not taken this long is skipped */
struct l1_turn {
	uint32_t ticket, seen;
	int have;
	uint64_t seen_ns;
};
/* Tickets are out and the current turn began starve_ns ago or more:
 * newcomers queue instead of barging in. */
int l1__turn_starving(struct l1_queue *q, uint64_t starve_ns);
void l1__turn_take(struct l1_queue *q, struct l1_turn *t);
/* May this thread go now: no ticket, or its turn (or it was skipped). */
int l1__turn_mine(struct l1_queue *q, struct l1_turn *t);
/* Got what it waited for, or gave up: the next ticket's turn (if it was ours). */
void l1__turn_done(struct l1_queue *q, struct l1_turn *t);
/* CLOCK_MONOTONIC_COARSE: cheap (no vDSO fallback to a syscall), ms-fine. */
static inline uint64_t l1__coarse_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
void l1__turn_wait(struct l1_queue *q, struct l1_turn *t, uint64_t max_ns);

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
int l1__zero_still_mine(void *ctx, const struct l1_zero_extent *e, int first);
/* Under the lock, gc's takeover: the zeroer field goes from seen to me only
 * if nobody changed it meanwhile (its engine may be claiming it). */
int l1__zeroer_seize(uint32_t *zeroer, uint32_t seen, uint32_t me);

/* dirty.c: the dirty-extent table (under the lock).  Engine cookies of
 * its entries are (index | L1_ZX_TABLE, gen); of DIRTY records (slot, gen). */
#define L1_ZX_TABLE 0x80000000u
int l1__dirty_add(struct l1_arena *a, uint64_t offset, uint64_t size,
		  struct l1_zero_extent *x);
int l1__dirty_extend(struct l1_arena *a, struct l1_zero_extent *x, uint64_t offset,
		     uint64_t size);
struct l1_dirty_ent *l1__dirty_of(struct l1_arena *a, uint32_t slot, uint32_t gen);
uint64_t l1__dirty_release(struct l1_arena *a, uint32_t slot, uint32_t gen);
uint64_t l1__dirty_release_head(struct l1_arena *a, uint32_t slot, uint32_t gen, uint64_t len);
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
int l1__help_claim(struct l1_arena *a, uint64_t nblk, uint32_t count, uint64_t *starts,
		   struct l1_help **hpp);
int l1__help_prefer(struct l1_arena *a, uint64_t nblk, uint32_t count, uint64_t *starts,
		    struct l1_help **hpp);
void l1__help_commit(struct l1_arena *a, struct l1_help *hp);
void l1__help_zero(struct l1_arena *a, struct l1_help *hp);
void l1__zero_at_free(struct l1_arena *a, struct l1_zero_extent *q, uint32_t *nq,
		      struct l1_zero_extent *iq, uint32_t *niq);
void l1__zero_inline_finish(struct l1_arena *a, const struct l1_zero_extent *iq, uint32_t n);

/* gc.c */
void l1__requeue_orphans(struct l1_arena *a);

/* The pool's size as asked for: usage's total; its blocks are the ones the
 * allocator hands out (a pool whose header predates the field: the whole
 * data region). */
static inline uint64_t l1__pool_size(const struct l1_hdr *h)
{
	return h->pool_size ? h->pool_size : h->data_size;
}

/* Blocks an allocation may use now: the committed ones, but never past
 * nblocks (the backing's last huge page may reach beyond the pool). */
static inline uint64_t l1__blocks_usable(const struct l1_hdr *h)
{
	uint64_t c = atomic_load_explicit(&((struct l1_hdr *)h)->committed,
					  memory_order_relaxed) / h->block_size;
	return c < h->nblocks ? c : h->nblocks;
}

/* extent.c */
int l1__rec_geometry_ok(const struct l1_arena *a, const struct l1_rec *r);
int l1__extent_ok(const struct l1_arena *a, uint64_t offset, uint64_t size);
int l1__extent_claim(struct l1_arena *a, uint64_t offset, uint64_t size);
void l1__extent_blocks(const struct l1_arena *a, uint64_t offset, uint64_t size, uint64_t *b,
		       uint64_t *n);

/* repair.c */
void l1__rebuild(struct l1_arena *a);

/* check.c */
int l1__validate_header(const struct l1_hdr *h, uint64_t file_size);

/* backing.c */
int l1__backing_statfs(const char *path, uint64_t *hugepage_size, int *is_hugetlbfs);
int l1__backing_commit(int fd, uint64_t off, uint64_t len);
uint64_t l1__hugepages_avail(uint64_t page_size, int fd);
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
