/*
 * check_kill.c - processes killed at random moments, hundreds of times.  K
 * worker processes allocate, write, publish, read (hold by key and check the
 * bytes), free published and unpublished objects in random batches, while
 * the test process (the killer) SIGKILLs a random worker every few
 * milliseconds and starts a new one in its place.  Workers also kill
 * themselves: inside the pool lock (a test hook raises SIGKILL at
 * ALLOC_CLAIMED, FREE_MID, PUBLISH and ZERO_DONE), right after a free while
 * their zeroing is in flight, and, in a lazy pool with a small grow step, in
 * the allocation that grew the pool.
 *
 * What each worker publishes is logged in a shared table before and after
 * the call (INTENT -> PUB, PUB -> FREEING -> EMPTY), so that after a death
 * the killer knows every object that must exist; entries a death left
 * uncertain are settled by key.  After every kill: gc, memcheck clean, every
 * object the dead worker published still found by key with its bytes, and a
 * fresh allocation works.  Every 25 kills (10 in the lazy run, which then
 * starts over with a new pool once it is fully grown), and at the end, all
 * workers are killed and everything is accounted for exactly: after gc and
 * zeroing, the published objects are precisely those the table lists, used
 * bytes are their sizes, nothing is allocated, dirty, doomed or held, and
 * memcheck (bitmap = records, counters, index) is clean.
 *
 * L1_KILLS (default 200) sets the kills of the eager run; the lazy run does
 * L1_KILLS/4 (at least 25); L1_KILL_WORKERS (default 4) the workers.  The
 * summary line at the end of each run gives the figures.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

#define MiB (1ull << 20)
#define MAXW 8                          /* workers at most */
#define ENT 96                          /* published objects a worker slot keeps */
#define LOCAL 32                        /* unpublished objects a worker keeps */

enum { E_EMPTY, E_INTENT, E_PUB, E_FREEING };

/* One published object, as its worker slot logged it. */
struct ent {
	_Atomic uint32_t state;
	uint32_t reserved;
	uint64_t id;
	uint64_t size;
	uint64_t seed;                  /* bytes = l1t_fill(seed); key = k-<seed> */
};

struct shared {
	_Atomic uint64_t next_seed;
	_Atomic uint64_t ops;
	_Atomic uint64_t reads;
	_Atomic uint64_t publishes;
	_Atomic uint64_t refused[2];        /* allocations refused: ENOMEM, ENOSPC */
	_Atomic uint64_t hook_kills[8];     /* by L1_HOOK_* (the engine's too) */
	_Atomic uint64_t zero_kills;        /* self-killed with its zeroing in flight */
	_Atomic uint64_t grow_kills;        /* self-killed in an allocation that grew */
	char err[MAXW][512];
	struct ent ent[MAXW][ENT];
};

struct run {
	const char *name;
	int lazy;
	uint32_t kills, nworkers;
	uint32_t hook_per_10k;          /* chance of death per hook call */
	uint32_t max_sleep_ms;          /* between the killer's kills */
	uint32_t checkpoint;            /* kills between exact accountings */
	uint64_t min_obj, max_obj;      /* object sizes */
	uint32_t ent_max, local_max;    /* published, unpublished objects a worker keeps */
};

/* Figures of one run, for the summary line. */
struct tally {
	uint64_t kills, by_killer, by_hook, killed_dirty, killed_growing, checkpoints;
	uint64_t verified, gc_objects, gc_dirty, gc_holds, gc_clients, pools;
};

static struct shared *S;
static struct l1_arena *W;              /* the worker's handle */
static uint32_t w_slot, w_hook_per_10k, w_nworkers, w_ent_max;
static uint64_t w_committed;

static uint64_t rnd(uint64_t n)
{
	return n ? (uint64_t)random() % n : 0;
}

static void key_of(uint64_t seed, char *key, size_t len)
{
	snprintf(key, len, "k-%016llx", (unsigned long long)seed);
}

static void worker_fail(const char *fmt, const char *what, int code)
{
	snprintf(S->err[w_slot], sizeof S->err[w_slot], fmt, what, l1_last_error());
	_exit(code);
}

/* ---- the worker ---------------------------------------------------------- */

static void kill_hook(struct l1_arena *a, int where)
{
	if (where == L1_HOOK_ALLOC_CLAIMED && a->h->lazy) {
		uint64_t c = atomic_load(&a->h->committed);
		if (c > w_committed) {          /* this allocation grew the pool */
			w_committed = c;
			if (rnd(2)) {
				atomic_fetch_add(&S->grow_kills, 1);
				raise(SIGKILL);
			}
		}
	}
	if (where >= 0 && where < 8 && rnd(10000) < w_hook_per_10k) {
		atomic_fetch_add(&S->hook_kills[where], 1);
		raise(SIGKILL);
	}
}

static void publish_one(struct l1_obj *o, uint64_t seed)
{
	char key[32];
	struct ent *t = S->ent[w_slot];
	uint32_t j;
	for (j = 0; j < w_ent_max && atomic_load(&t[j].state) != E_EMPTY; j++)
		;
	if (j == w_ent_max) {                   /* table full: not published */
		if (l1_free(W, o, 1))
			worker_fail("free of an unpublished object: %s%s", "", 3);
		return;
	}
	t[j].id = o->id;
	t[j].size = o->size;
	t[j].seed = seed;
	atomic_store(&t[j].state, E_INTENT);
	key_of(seed, key, sizeof key);
	if (l1_publish(W, o->id, key))
		worker_fail("publish %s: %s", key, 2);
	atomic_store(&t[j].state, E_PUB);
	atomic_fetch_add(&S->publishes, 1);
}

static void free_published(uint32_t max)
{
	struct ent *t = S->ent[w_slot];
	uint64_t ids[8];
	uint32_t js[8], n = 0;
	uint32_t start = (uint32_t)rnd(ENT);
	for (uint32_t k = 0; k < ENT && n < max && n < 8; k++) {
		uint32_t j = (start + k) % ENT;
		if (atomic_load(&t[j].state) == E_PUB) {
			js[n] = j;
			ids[n++] = t[j].id;
		}
	}
	for (uint32_t i = 0; i < n; i++)
		atomic_store(&t[js[i]].state, E_FREEING);
	if (n && l1_free_ids(W, ids, n))
		worker_fail("free of published objects%s: %s", "", 3);
	for (uint32_t i = 0; i < n; i++)
		atomic_store(&t[js[i]].state, E_EMPTY);
}

/* Holds this worker keeps for a while, so that deaths leave holds behind
 * (and objects freed while held, DOOMED, for gc to finish). */
static uint64_t w_held[4];
static uint32_t w_nheld;

/* Holds a random published object of any worker by key and checks it. */
static void read_one(void)
{
	char key[32];
	struct l1_obj o;
	struct ent *t = S->ent[rnd(w_nworkers)], *e = NULL;
	for (uint32_t k = 0, j = (uint32_t)rnd(ENT); k < ENT && !e; k++, j = (j + 1) % ENT)
		if (atomic_load(&t[j].state) == E_PUB)
			e = &t[j];
	if (!e)
		return;
	uint64_t seed = e->seed;                /* may be rewritten: the key says */
	key_of(seed, key, sizeof key);
	if (l1_hold_key(W, key, &o) != 0)
		return;                         /* freed meanwhile */
	if (!l1t_check(o.ptr, o.size, seed)) {
		/* what is there instead: zeros (a zeroing that should not have
		 * run) or another pattern (an overlapping allocation) */
		const uint64_t *w = o.ptr;
		char runs[160] = "";
		size_t at = 0;
		uint64_t bad = 0;
		for (uint64_t k = 0; k < o.size / 8; k++) {
			if (l1t_check(w + k, 8, seed + k))
				continue;
			uint64_t e = k;
			int zero = w[k] == 0;
			while (e < o.size / 8 && !l1t_check(w + e, 8, seed + e) &&
			       (w[e] == 0) == zero)
				e++;
			if (at < sizeof runs - 40)
				at += (size_t)snprintf(runs + at, sizeof runs - at, " [%llu,%llu)%s",
						       (unsigned long long)k * 8,
						       (unsigned long long)e * 8, zero ? "=0" : "");
			bad += e - k;
			k = e - 1;
		}
		struct l1_obj_info info;
		l1_obj_info(W, o.id, &info);
		snprintf(S->err[w_slot], sizeof S->err[w_slot], "object %s (id %llx, offset %llu, "
			 "%llu bytes, %s, %u holds) changed under a hold: %llu words, byte ranges%s",
			 key, (unsigned long long)o.id, (unsigned long long)o.offset,
			 (unsigned long long)o.size, l1_state_name(info.state), info.holds,
			 (unsigned long long)bad, runs);
		_exit(4);
	}
	atomic_fetch_add(&S->reads, 1);
	if (w_nheld < 4 && rnd(2)) {
		w_held[w_nheld++] = o.id;
		return;
	}
	if (l1_release(W, o.id))
		worker_fail("release %s: %s", key, 5);
}

static void release_held(void)
{
	while (w_nheld)
		if (l1_release(W, w_held[--w_nheld]))
			worker_fail("release of a kept hold%s: %s", "", 5);
}

static void worker(const char *path, uint32_t slot, const struct run *rc, pid_t parent)
{
	struct l1_open_opts oo;
	struct l1_obj local[LOCAL], o[8];
	uint32_t nlocal = 0;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	w_slot = slot;
	w_hook_per_10k = rc->hook_per_10k;
	w_nworkers = rc->nworkers;
	w_ent_max = rc->ent_max;
	srandom((unsigned)getpid() ^ (unsigned)time(NULL));
	l1_open_opts_init(&oo);
	oo.pin = L1_PIN_OFF;
	if (l1_arena_open(path, &oo, &W))
		worker_fail("open %s: %s", path, 100);
	w_committed = atomic_load(&W->h->committed);
	l1_test_set_hook(W, kill_hook);
	for (;;) {
		uint64_t op = rnd(100);
		atomic_fetch_add(&S->ops, 1);
		if (op < 40) {
			uint32_t n = 1 + (uint32_t)rnd(8);
			/* a few sizes: each distinct size is a layout, and the pool's
			 * layout table (1024) only grows */
			uint64_t sz = rc->min_obj + 4096 * rnd((rc->max_obj - rc->min_obj) / 4096 + 1);
			int r = l1_alloc_bytes(W, sz, n, o);
			if (r == -ENOMEM || r == -ENOSPC) {
				atomic_fetch_add(&S->refused[r == -ENOSPC], 1);
				free_published(8);
				continue;
			}
			if (r)
				worker_fail("alloc%s: %s", "", 1);
			for (uint32_t i = 0; i < n; i++) {
				uint64_t seed = atomic_fetch_add(&S->next_seed, 1);
				l1t_fill(o[i].ptr, o[i].size, seed);
				if (rnd(10) < 7)
					publish_one(&o[i], seed);
				else if (nlocal < rc->local_max)
					local[nlocal++] = o[i];
				else if (l1_free(W, &o[i], 1))
					worker_fail("free%s: %s", "", 3);
			}
		} else if (op < 65) {
			free_published(1 + (uint32_t)rnd(4));
		} else if (op < 75) {
			uint32_t n = (uint32_t)rnd(nlocal + 1);
			if (n && l1_free(W, local + nlocal - n, n))
				worker_fail("free of unpublished objects%s: %s", "", 3);
			nlocal -= n;
		} else if (op < 93) {
			read_one();
		} else if (op < 99) {
			release_held();
		} else {
			/* a large batch freed, then die while it is being zeroed */
			uint32_t n = 4;
			if (l1_alloc_bytes(W, MiB, n, o) != 0)
				continue;
			for (uint32_t i = 0; i < n; i++)
				memset(o[i].ptr, 0x5a, o[i].size);
			if (l1_free(W, o, n))
				worker_fail("free of a large batch%s: %s", "", 3);
			if (rnd(30) == 0 && atomic_load(&W->h->dirty_bytes) > 0) {
				atomic_fetch_add(&S->zero_kills, 1);
				raise(SIGKILL);
			}
		}
	}
}

/* ---- the killer -------------------------------------------------------- */

static pid_t start_worker(const char *path, uint32_t slot, const struct run *rc)
{
	pid_t parent = getpid();
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0)
		worker(path, slot, rc, parent);
	return p;
}

/* The object behind an entry must be published under its key, with its
 * id and its bytes. */
static void expect_entry(struct l1_arena *a, const struct ent *e)
{
	char key[32];
	struct l1_obj o;
	key_of(e->seed, key, sizeof key);
	ck_assert_msg(l1_hold_key(a, key, &o) == 0, "published object %s lost: %s", key,
		      l1_last_error());
	ck_assert_uint_eq(o.id, e->id);
	ck_assert_uint_eq(o.size, e->size);
	ck_assert_msg(l1t_check(o.ptr, o.size, e->seed), "published object %s: bytes changed",
		      key);
	ck_assert_int_eq(l1_release(a, o.id), 0);
}

/* After slot's worker died: settle what its death left uncertain, and check
 * everything it had published.  Returns the objects checked. */
static uint64_t settle_slot(struct l1_arena *a, uint32_t slot)
{
	char key[32];
	struct l1_obj o;
	uint64_t n = 0;
	for (uint32_t j = 0; j < ENT; j++) {
		struct ent *e = &S->ent[slot][j];
		uint32_t st = atomic_load(&e->state);
		if (st == E_INTENT || st == E_FREEING) {
			key_of(e->seed, key, sizeof key);
			int r = l1_lookup(a, key, &o);
			ck_assert_msg(r == 0 || r == -ENOENT, "lookup %s: %s", key, l1_last_error());
			ck_assert(r != 0 || o.id == e->id);
			atomic_store(&e->state, r == 0 ? E_PUB : E_EMPTY);
		}
		if (atomic_load(&e->state) == E_PUB) {
			expect_entry(a, e);
			n++;
		}
	}
	return n;
}

static void reap(pid_t p, uint32_t slot, struct tally *t)
{
	int st = l1t_wait(p);
	ck_assert_msg(st == 128 + SIGKILL, "worker %u ended with status %d, not SIGKILL: %s",
		      slot, st, S->err[slot]);
	t->kills++;
}

static void gc_tally(struct l1_arena *a, struct tally *t)
{
	struct l1_gc_result g;
	ck_assert_int_eq(l1_arena_gc(a, &g), 0);
	t->gc_objects += g.objects_reclaimed;
	t->gc_dirty += g.dirty_requeued;
	t->gc_holds += g.holds_dropped;
	t->gc_clients += g.clients_dropped;
}

/* The pool still hands out memory, and the bytes are ours.  If it is full,
 * room is made by freeing what the dead worker (slot) had published. */
static void still_serves(struct l1_arena *a, uint32_t slot)
{
	struct l1_obj o;
	int r = -ENOMEM;
	for (int i = 0; i < 4 && r; i++) {
		r = l1_alloc_bytes(a, 4096, 1, &o);
		for (uint32_t j = 0, n = 0; r && j < ENT && n < 4; j++) {
			struct ent *e = &S->ent[slot][j];
			if (atomic_load(&e->state) != E_PUB)
				continue;
			ck_assert_int_eq(l1_free_ids(a, &e->id, 1), 0);
			atomic_store(&e->state, E_EMPTY);
			n++;
		}
		if (r)
			l1_arena_flush(a, 1000);
	}
	ck_assert_msg(r == 0, "the pool no longer serves: %s", l1_last_error());
	l1t_fill(o.ptr, o.size, 424242);
	ck_assert(l1t_check(o.ptr, o.size, 424242));
	ck_assert_int_eq(l1_free(a, &o, 1), 0);
}

/* All workers are dead: everything is accounted for, exactly. */
static void account_exactly(struct l1_arena *a, struct tally *t)
{
	struct l1_usage u;
	uint64_t npub = 0, bytes = 0;
	gc_tally(a, t);
	ck_assert_int_eq(l1_arena_flush(a, 30000), 0);
	for (uint32_t w = 0; w < MAXW; w++) {
		t->verified += settle_slot(a, w);
		for (uint32_t j = 0; j < ENT; j++)
			if (atomic_load(&S->ent[w][j].state) == E_PUB) {
				npub++;
				bytes += S->ent[w][j].size;
			}
	}
	l1t_memcheck_clean(a);
	ck_assert_int_eq(l1_arena_usage(a, &u), 0);
	ck_assert_uint_eq(u.objects[L1_STATE_PUBLISHED], npub);
	ck_assert_uint_eq(u.used_bytes, bytes);
	ck_assert_uint_eq(u.objects[L1_STATE_ALLOCATED], 0);
	ck_assert_uint_eq(u.objects[L1_STATE_DIRTY], 0);
	ck_assert_uint_eq(u.objects[L1_STATE_DOOMED], 0);
	ck_assert_uint_eq(u.dirty_bytes, 0);
	ck_assert_uint_eq(u.holds, 0);
	ck_assert_uint_eq(u.clients, 1);
	ck_assert_uint_eq(u.objects[L1_STATE_FREE], u.max_objects - npub);
	ck_assert_uint_le(u.committed_bytes, u.total_bytes);
	ck_assert_uint_eq(u.committed_bytes % u.grow_step_bytes == 0 ||
			  u.committed_bytes == u.total_bytes, 1);
	t->checkpoints++;
}

static void kill_all(pid_t *pids, uint32_t n, struct tally *t)
{
	for (uint32_t w = 0; w < n; w++)
		kill(pids[w], SIGKILL);
	for (uint32_t w = 0; w < n; w++) {
		int st = l1t_wait(pids[w]);
		ck_assert_msg(st == 128 + SIGKILL, "worker %u ended with status %d: %s", w, st,
			      S->err[w]);
		t->kills++;
		t->by_killer++;
	}
}

static struct l1_arena *make_pool(const struct run *rc, struct tally *t)
{
	struct l1_config c;
	struct l1_arena *a;
	l1t_config(&c, rc->name, rc->lazy ? 32 * MiB : 64 * MiB);
	c.max_objects = 4096;
	if (rc->lazy) {
		c.lazy = 1;
		c.grow_step_bytes = 2 * MiB;
		c.init_size_bytes = 2 * MiB;
	}
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	memset(S->ent, 0, sizeof S->ent);
	t->pools++;
	return a;
}

/* Frees everything the table lists and checks the pool ends empty. */
static void drain(struct l1_arena *a)
{
	for (uint32_t w = 0; w < MAXW; w++)
		for (uint32_t j = 0; j < ENT; j++) {
			struct ent *e = &S->ent[w][j];
			if (atomic_load(&e->state) != E_PUB)
				continue;
			ck_assert_int_eq(l1_free_ids(a, &e->id, 1), 0);
			atomic_store(&e->state, E_EMPTY);
		}
	ck_assert_int_eq(l1_arena_flush(a, 30000), 0);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.used_bytes, 0);
	ck_assert_uint_eq(u.objects[L1_STATE_FREE], u.max_objects);
	l1t_memcheck_clean(a);
}

static uint32_t env_u32(const char *name, uint32_t def, uint32_t lo, uint32_t hi)
{
	const char *v = getenv(name);
	long n = v && *v ? strtol(v, NULL, 10) : (long)def;
	return n < (long)lo ? lo : n > (long)hi ? hi : (uint32_t)n;
}

static void kill_run(const struct run *rc)
{
	struct tally t = { 0 };
	pid_t pids[MAXW];
	char path[512];
	S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(S != MAP_FAILED);
	memset(S, 0, sizeof *S);
	atomic_store(&S->next_seed, 1);
	srandom((unsigned)time(NULL));
	struct l1_arena *a = make_pool(rc, &t);
	snprintf(path, sizeof path, "%s", l1_arena_path(a));
	for (uint32_t w = 0; w < rc->nworkers; w++)
		pids[w] = start_worker(path, w, rc);
	uint64_t since_checkpoint = 0;
	while (t.kills < rc->kills) {
		/* wait a random moment, taking in workers that killed themselves */
		int st, died = -1;
		uint64_t wait_us = 1000 * rnd(rc->max_sleep_ms + 1), slept = 0;
		pid_t p = 0;
		while ((p = waitpid(-1, &st, WNOHANG)) == 0 && slept <= wait_us) {
			usleep(500);
			slept += 500;
		}
		if (p > 0) {
			for (uint32_t w = 0; w < rc->nworkers; w++)
				if (pids[w] == p)
					died = (int)w;
			ck_assert_msg(died >= 0, "unknown child %d", (int)p);
			ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
				      "worker %d ended with status %d: %s", died, st,
				      S->err[died]);
			t.kills++;
			t.by_hook++;
		} else {
			died = (int)rnd(rc->nworkers);
			if (atomic_load(&a->h->dirty_bytes))
				t.killed_dirty++;
			if (atomic_load(&a->h->committed) < a->h->data_size)
				t.killed_growing++;
			kill(pids[died], SIGKILL);
			reap(pids[died], (uint32_t)died, &t);
			t.by_killer++;
		}
		/* after each kill: the pool is whole and serves */
		gc_tally(a, &t);
		l1t_memcheck_clean(a);
		t.verified += settle_slot(a, (uint32_t)died);
		still_serves(a, (uint32_t)died);
		pids[died] = start_worker(path, (uint32_t)died, rc);
		if (++since_checkpoint >= rc->checkpoint) {
			since_checkpoint = 0;
			kill_all(pids, rc->nworkers, &t);
			account_exactly(a, &t);
			if (rc->lazy && atomic_load(&a->h->committed) == a->h->data_size) {
				/* fully grown: growth is what this run is about, start over */
				drain(a);
				l1t_destroy(a);
				a = make_pool(rc, &t);
				snprintf(path, sizeof path, "%s", l1_arena_path(a));
			}
			for (uint32_t w = 0; w < rc->nworkers; w++)
				pids[w] = start_worker(path, w, rc);
		}
	}
	kill_all(pids, rc->nworkers, &t);
	account_exactly(a, &t);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	uint64_t hooks = 0;
	for (int i = 0; i < 5; i++)
		hooks += atomic_load(&S->hook_kills[i]);
	printf("kill %s: %llu kills survived (%llu by the killer, %llu self: %llu in the lock "
	       "[alloc %llu, free %llu, publish %llu, zero-done %llu], %llu with zeroing in "
	       "flight, %llu in an allocation that grew); the killer hit %llu times with dirty "
	       "bytes, %llu while the pool was growing; %llu pools, %llu exact accountings; "
	       "%llu ops, %llu objects published, %llu reads checked, %llu+%llu allocations refused "
	       "(no memory, no record), %llu published objects "
	       "verified intact after deaths, 0 lost; gc reclaimed %llu objects, %llu dirty "
	       "extents, %llu holds, %llu clients; %llu lock repairs in the last pool\n",
	       rc->name, (unsigned long long)t.kills, (unsigned long long)t.by_killer,
	       (unsigned long long)t.by_hook, (unsigned long long)hooks,
	       (unsigned long long)atomic_load(&S->hook_kills[L1_HOOK_ALLOC_CLAIMED]),
	       (unsigned long long)atomic_load(&S->hook_kills[L1_HOOK_FREE_MID]),
	       (unsigned long long)atomic_load(&S->hook_kills[L1_HOOK_PUBLISH]),
	       (unsigned long long)atomic_load(&S->hook_kills[L1_HOOK_ZERO_DONE]),
	       (unsigned long long)atomic_load(&S->zero_kills),
	       (unsigned long long)atomic_load(&S->grow_kills),
	       (unsigned long long)t.killed_dirty, (unsigned long long)t.killed_growing,
	       (unsigned long long)t.pools, (unsigned long long)t.checkpoints,
	       (unsigned long long)atomic_load(&S->ops),
	       (unsigned long long)atomic_load(&S->publishes),
	       (unsigned long long)atomic_load(&S->reads),
	       (unsigned long long)atomic_load(&S->refused[0]),
	       (unsigned long long)atomic_load(&S->refused[1]), (unsigned long long)t.verified,
	       (unsigned long long)t.gc_objects, (unsigned long long)t.gc_dirty,
	       (unsigned long long)t.gc_holds, (unsigned long long)t.gc_clients,
	       (unsigned long long)u.repairs);
	fflush(stdout);
	/* every kind of death happened */
	ck_assert_uint_ge(t.kills, rc->kills);
	ck_assert_uint_gt(t.by_killer, 0);
	ck_assert_uint_gt(t.gc_dirty, 0);               /* dead zeroers' extents taken over */
	if (rc->lazy) {
		ck_assert_uint_gt(atomic_load(&S->grow_kills) + t.killed_growing, 0);
	} else {
		ck_assert_uint_gt(hooks, 0);
		ck_assert_uint_gt(atomic_load(&S->zero_kills) + t.killed_dirty, 0);
	}
	drain(a);
	l1t_destroy(a);
	munmap(S, sizeof *S);
}

START_TEST(kill_eager)
{
	struct run rc = {
		.name = "eager", .kills = env_u32("L1_KILLS", 200, 1, 1u << 30),
		.nworkers = env_u32("L1_KILL_WORKERS", 4, 1, MAXW), .hook_per_10k = 1,
		.max_sleep_ms = 60, .checkpoint = 25, .min_obj = 4096, .max_obj = 32768,
		.ent_max = ENT, .local_max = LOCAL,
	};
	kill_run(&rc);
}
END_TEST

START_TEST(kill_lazy_growth)
{
	uint32_t k = env_u32("L1_KILLS", 200, 1, 1u << 30) / 4;
	struct run rc = {
		.name = "lazy", .lazy = 1, .kills = k < 25 ? 25 : k,
		.nworkers = env_u32("L1_KILL_WORKERS", 4, 1, MAXW), .hook_per_10k = 1,
		.max_sleep_ms = 20, .checkpoint = 10, .min_obj = 64 * 1024, .max_obj = 256 * 1024,
		.ent_max = 16, .local_max = 4,
	};
	kill_run(&rc);
}
END_TEST

/* ---- a process is dead only when all of its threads are ----------------- */

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static char proc_state(pid_t p)
{
	return l1t_proc_stat(p, NULL);
}

/* The main thread of a writer exits (its /proc entry shows a zombie) while
 * another thread of it still runs: gc must not take its objects or its
 * dirty extents, which that thread may still be writing; once the whole
 * process is gone, gc does. */
START_TEST(leader_gone_threads_alive)
{
	struct l1_arena *a = l1t_create("leader", 16 * MiB);
	const char *path = l1_arena_path(a);
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t kid = fork();
	if (kid == 0) {
		struct l1_arena *b;
		struct l1_obj o[4];
		pthread_t t;
		if (l1_arena_open(path, NULL, &b) || l1_alloc_bytes(b, 65536, 4, o))
			_exit(1);
		if (pthread_create(&t, NULL, sleeper, NULL))
			_exit(2);
		if (write(p[1], "r", 1) != 1)
			_exit(3);
		pthread_exit(NULL);             /* the leader goes; the process lives */
	}
	char ch;
	ck_assert_int_eq(read(p[0], &ch, 1), 1);
	for (int i = 0; i < 2000 && proc_state(kid) != 'Z'; i++)
		usleep(1000);
	ck_assert_int_eq(proc_state(kid), 'Z');
	struct l1_gc_result g;
	ck_assert_int_eq(l1_arena_gc(a, &g), 0);
	ck_assert_uint_eq(g.objects_reclaimed, 0);
	ck_assert_uint_eq(g.clients_dropped, 0);
	kill(kid, SIGKILL);
	ck_assert_int_eq(l1t_wait(kid), 128 + SIGKILL);
	ck_assert_int_eq(l1_arena_gc(a, &g), 0);
	ck_assert_uint_eq(g.objects_reclaimed, 4);
	ck_assert_uint_eq(g.clients_dropped, 1);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
	close(p[0]);
	close(p[1]);
}
END_TEST

int main(void)
{
	uint32_t kills = env_u32("L1_KILLS", 200, 1, 1u << 30);
	Suite *s = suite_create("kill");
	TCase *t = tcase_create("random_kills");
	tcase_set_timeout(t, 120 + kills);      /* never the measure: a hang guard */
	tcase_add_test(t, kill_eager);
	tcase_add_test(t, kill_lazy_growth);
	suite_add_tcase(s, t);
	t = tcase_create("liveness");
	tcase_add_test(t, leader_gone_threads_alive);
	suite_add_tcase(s, t);
	return l1t_run_suite(s);
}
