/*
 * check_zhelp.c - zeroing by the threads that allocate and free (zhelp.c)
 * and best-fit placement of large batches (place.c).  With the engine's
 * share forced (no zeroing at free), an allocation that comes right after a
 * free of the whole pool takes dirty extents and zeroes them itself: every
 * allocated byte reads zero, every freed byte is zeroed exactly once (by an
 * allocating thread or by the engine, never both: the sum of the two equals
 * the bytes freed), live objects are never touched (each is checked against
 * its fill before it is freed), also with two threads racing the engine;
 * memcheck stays clean and nothing is left dirty.  A small free is zeroed
 * by the freeing thread at once, and so is a batch of small objects that
 * lie apart, as far as the freer's list holds.  One claim for all who zero: the engine's
 * claim before its first byte fails on an extent a thread of its process
 * (or anyone) claimed, and a second claim fails on one the engine claimed;
 * gc leaves a claimed extent of a live client alone.  Placement with L1ARENA_PLACE=best: a
 * large object takes the tightest hole, a small one the lowest.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "l1arena_test.h"
#include "testutil.h"

#define MiB (1ull << 20)
#define KiB (1ull << 10)

static struct l1_arena *create(const char *name, uint64_t size, int zero)
{
	struct l1_config c;
	struct l1_arena *a;
	l1t_config(&c, name, size);
	c.zero_on_free = zero;
	c.max_objects = 4096;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	return a;
}

/* the engine gets every freed extent: no zeroing at free */
static void engine_only(void)
{
	setenv("L1ARENA_ZINLINE", "0", 1);
	setenv("L1ARENA_ZBACKLOG", "0x7fffffffffffffff", 1);
}

static void engine_default(void)
{
	unsetenv("L1ARENA_ZINLINE");
	unsetenv("L1ARENA_ZBACKLOG");
}

static void settle(struct l1_arena *a, uint64_t freed)
{
	struct l1_usage u;
	struct l1_zero_split z;
	ck_assert_int_eq(l1_arena_flush(a, 60000), 0);
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.dirty_bytes, 0);
	ck_assert_uint_eq(u.used_bytes, 0);
	ck_assert_int_eq(l1_arena_zero_split(a, &z), 0);
	ck_assert_msg(z.by_allocate + z.by_engine + z.by_free == freed,
		      "zeroed %llu by allocate + %llu by the engine + %llu by free, freed %llu",
		      (unsigned long long)z.by_allocate, (unsigned long long)z.by_engine,
		      (unsigned long long)z.by_free, (unsigned long long)freed);
	l1t_memcheck_clean(a);
}

START_TEST(allocate_after_free_reads_zero)
{
	engine_only();
	struct l1_arena *a = create("zhelp", 32 * MiB, 1);
	static struct l1_obj o[32];
	uint64_t freed = 0;
	for (int round = 0; round < 20; round++) {
		/* the whole pool, right after it was all freed: dirty */
		ck_assert_int_eq(l1_alloc_bytes(a, MiB, 32, o), 0);
		for (int i = 0; i < 32; i++) {
			ck_assert_msg(l1t_is_zero(o[i].ptr, o[i].size),
				      "round %d: object %d handed out dirty", round, i);
			l1t_fill(o[i].ptr, o[i].size, (uint64_t)round * 64 + (uint64_t)i);
		}
		for (int i = 0; i < 32; i++)
			ck_assert(l1t_check(o[i].ptr, o[i].size, (uint64_t)round * 64 + (uint64_t)i));
		ck_assert_int_eq(l1_free(a, o, 32), 0);
		freed += 32 * MiB;
	}
	settle(a, freed);
	l1t_destroy(a);
	engine_default();
}
END_TEST

struct racer {
	struct l1_arena *a;
	unsigned seed;
	uint64_t freed;
	int bad;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	struct l1_obj o[4];
	for (int step = 0; step < 400 && !r->bad; step++) {
		uint32_t n = 1 + (uint32_t)(rand_r(&r->seed) % 4);
		uint64_t sz = (64 * KiB) << (rand_r(&r->seed) % 6);    /* 64 KiB..2 MiB */
		int e = l1_alloc_bytes(r->a, sz, n, o);
		if (e == -ENOMEM)
			continue;       /* the other thread holds the rest */
		if (e) {
			r->bad = 1;
			break;
		}
		uint64_t seed = ((uint64_t)r->seed << 8) ^ (uint64_t)step;
		for (uint32_t i = 0; i < n; i++) {
			if (!l1t_is_zero(o[i].ptr, o[i].size))
				r->bad = 2;
			l1t_fill(o[i].ptr, o[i].size, seed + i);
		}
		for (uint32_t i = 0; i < n; i++)
			if (!l1t_check(o[i].ptr, o[i].size, seed + i))
				r->bad = 3;     /* someone zeroed a live object */
		if (l1_free(r->a, o, n))
			r->bad = 4;
		for (uint32_t i = 0; i < n; i++)
			r->freed += o[i].size;
	}
	return NULL;
}

START_TEST(two_threads_race_the_engine)
{
	engine_only();
	struct l1_arena *a = create("zrace", 16 * MiB, 1);
	struct racer r[2] = { { a, 11 + (unsigned)_i, 0, 0 }, { a, 97 + (unsigned)_i, 0, 0 } };
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 2; i++)
		ck_assert_msg(!r[i].bad, "thread %d: %s", i,
			      r[i].bad == 2 ? "handed out dirty bytes" :
			      r[i].bad == 3 ? "a live object was overwritten" : l1_last_error());
	settle(a, r[0].freed + r[1].freed);
	l1t_destroy(a);
	engine_default();
}
END_TEST

START_TEST(small_free_zeroed_by_the_freer)
{
	engine_default();
	struct l1_arena *a = create("zsmall", 8 * MiB, 1);
	struct l1_obj o;
	struct l1_usage u;
	struct l1_zero_split z;
	ck_assert_int_eq(l1_alloc_bytes(a, 16 * KiB, 1, &o), 0);
	memset(o.ptr, 0x5a, o.size);
	ck_assert_int_eq(l1_free(a, &o, 1), 0);
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.dirty_bytes, 0);            /* zeroed and released in free */
	ck_assert(l1t_is_zero(o.ptr, o.size));
	ck_assert_int_eq(l1_arena_zero_split(a, &z), 0);
	ck_assert_uint_eq(z.by_free, 16 * KiB);
	settle(a, 16 * KiB);
	l1t_destroy(a);
}
END_TEST

/* One l1_free of many small objects that lie apart (every other one of a
 * row): each is an extent of its own.  The freeing thread zeroes as many as
 * its list holds (L1_ZQ_MAX) and the engine the rest; before, the 64th
 * extent filled the list and handed all of them to the engine, so a batch
 * of 64 random frees (16 KiB, 16 384 live) cost 11 us an object on one CPU
 * against DPDK's 2.3 (l1bench sustain). */
START_TEST(separate_small_frees_zeroed_by_the_freer)
{
	engine_default();
	struct l1_arena *a = create("zapart", 16 * MiB, 1);
	static struct l1_obj row[200], apart[100];
	struct l1_zero_split z;
	uint64_t freed = 0;
	for (int round = 0; round < 2; round++) {
		uint32_t n = round ? 100 : 64;          /* 100: more than one list */
		ck_assert_int_eq(l1_alloc_bytes(a, 16 * KiB, 2 * n, row), 0);
		for (uint32_t i = 0; i < n; i++) {
			ck_assert_uint_eq(row[2 * i + 1].offset, row[2 * i].offset + 16 * KiB);
			apart[i] = row[2 * i];
			memset(apart[i].ptr, 0x3c, apart[i].size);
			memset(row[2 * i + 1].ptr, 0x77, row[2 * i + 1].size);
		}
		struct l1_zero_split before;
		ck_assert_int_eq(l1_arena_zero_split(a, &before), 0);
		ck_assert_int_eq(l1_free(a, apart, n), 0);
		ck_assert_int_eq(l1_arena_zero_split(a, &z), 0);
		/* all 64 (of 100: the 64 the list holds) zeroed before free returned */
		ck_assert_uint_eq(z.by_free - before.by_free, 64 * 16 * KiB);
		for (uint32_t i = 0; i < n; i++) {
			struct l1_obj *keep = &row[2 * i + 1];
			ck_assert(l1t_is_filled(keep->ptr, keep->size, 0x77));
		}
		ck_assert_int_eq(l1_arena_flush(a, 60000), 0);
		for (uint32_t i = 0; i < n; i++)
			ck_assert(l1t_is_zero(apart[i].ptr, apart[i].size));
		for (uint32_t i = 0; i < n; i++)
			apart[i] = row[2 * i + 1];
		ck_assert_int_eq(l1_free(a, apart, n), 0);
		freed += 2 * n * 16 * KiB;
	}
	settle(a, freed);
	l1t_destroy(a);
}
END_TEST

/* A dirty-table entry of this client over n fresh blocks (taken in the
 * bitmap), not queued to anyone. */
static struct l1_zero_extent forge_entry(struct l1_arena *a, struct l1_obj *o)
{
	struct l1_zero_extent x;
	ck_assert_int_eq(l1_alloc_bytes(a, MiB, 1, o), 0);
	ck_assert_int_eq(l1__lock(a), 0);
	ck_assert_int_eq(l1__dirty_add(a, o->offset + MiB, MiB, &x), 0);
	l1__bm_set(a, (o->offset + MiB - a->h->data_off) / a->h->block_size,
		   MiB / a->h->block_size);
	l1__unlock(a);
	return x;
}

START_TEST(one_claim_for_engine_and_helpers)
{
	engine_only();
	struct l1_arena *a = create("zclaim", 16 * MiB, 1);
	struct l1_obj o1, o2;
	struct l1_gc_result g;
	uint32_t me = a->client_tag;
	/* the engine claims first: a second claim (a helper's, the same
	 * compare-and-swap) fails, the engine's later checks pass, gc keeps off */
	struct l1_zero_extent x = forge_entry(a, &o1);
	struct l1_dirty_ent *e = &a->dirty[x.slot & ~L1_ZX_TABLE];
	ck_assert_int_eq(l1__zero_still_mine(a, &x, 1), 1);
	ck_assert_uint_eq(e->zeroer_client, me | L1_ZEROER_WRITING);
	ck_assert_int_eq(l1__zero_still_mine(a, &x, 1), 0);
	ck_assert_int_eq(l1__zero_still_mine(a, &x, 0), 1);
	ck_assert_int_eq(l1_arena_gc(a, &g), 0);
	ck_assert_uint_eq(g.dirty_requeued, 0);
	ck_assert_uint_eq(e->zeroer_client, me | L1_ZEROER_WRITING);
	memset(x.ptr, 0, x.len);
	l1__zero_done(a, &x, 1);                        /* claim goes, released */
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	/* a thread claimed first (as zhelp.c does): the engine's claim fails */
	struct l1_zero_extent y = forge_entry(a, &o2);
	e = &a->dirty[y.slot & ~L1_ZX_TABLE];
	uint32_t w = me;
	ck_assert(__atomic_compare_exchange_n(&e->zeroer_client, &w, me | L1_ZEROER_WRITING, 0,
					      __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
	ck_assert_int_eq(l1__zero_still_mine(a, &y, 1), 0);
	memset(y.ptr, 0, y.len);
	ck_assert_int_eq(l1__lock(a), 0);
	ck_assert_uint_eq(l1__dirty_release(a, y.slot, y.gen), MiB);
	l1__unlock(a);
	/* released: no claim of the old cookie holds */
	ck_assert_int_eq(l1__zero_still_mine(a, &y, 1), 0);
	ck_assert_int_eq(l1__zero_still_mine(a, &y, 0), 0);
	ck_assert_int_eq(l1_free(a, &o1, 1), 0);
	ck_assert_int_eq(l1_free(a, &o2, 1), 0);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
	engine_default();
}
END_TEST

/* A batch that one help takes whole, next to a dirty entry with a long free
 * run on its far side: the window the pick settles on misses the entry (no
 * dirty block in it).  It is a clean run then: no piece to zero, the entry
 * stays queued.  (Before, a piece of negative length went to memset: the
 * segfault of two_threads_race_the_engine, 1 run in 20.) */
START_TEST(help_window_beside_the_entry_is_clean)
{
	engine_only();
	struct l1_arena *a = create("zbeside", 16 * MiB, 1);
	struct l1_obj o;
	struct l1_help *hp = malloc(sizeof *hp);
	uint64_t starts[2], bs = a->h->block_size, nblk = 64 * KiB / bs;
	struct l1_zero_extent x = forge_entry(a, &o);
	uint64_t eb = ((uint8_t *)x.ptr - a->base - a->h->data_off) / bs, ek = x.len / bs;
	ck_assert_ptr_nonnull(hp);
	ck_assert_int_eq(l1__lock(a), 0);
	ck_assert_int_eq(l1__help_claim(a, nblk, 2, starts, &hp), 0);
	ck_assert_uint_eq(hp->np, 0);                   /* nothing dirty in the batch */
	for (int i = 0; i < 2; i++)
		ck_assert(starts[i] + nblk <= eb || starts[i] >= eb + ek);
	l1__help_commit(a, hp);
	l1__unlock(a);
	l1__help_zero(a, hp);
	ck_assert_uint_eq(a->h->dirty_bytes, MiB);      /* the entry is still queued */
	ck_assert_int_eq(l1__lock(a), 0);       /* the batch and the forged entry go */
	for (int i = 0; i < 2; i++)
		l1__bm_clear(a, starts[i], nblk);
	memset(x.ptr, 0, x.len);
	ck_assert_uint_eq(l1__dirty_release(a, x.slot, x.gen), MiB);
	l1__unlock(a);
	ck_assert_int_eq(l1_free(a, &o, 1), 0);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	l1t_memcheck_clean(a);
	free(hp);
	l1t_destroy(a);
	engine_default();
}
END_TEST

static atomic_int engine_go;

/* Engine thread, before its first write: waits for the test. */
static void hold_engine(struct l1_arena *a, int where)
{
	(void)a;
	while (where == L1_HOOK_ZERO_ISSUE && !atomic_load(&engine_go))
		usleep(1000);
}

/* A client frees most of the pool and its engine has not started (a busy
 * or slow neighbour).  Another client's allocate takes those queued
 * extents and zeroes what it uses itself, at once: it neither waits for the
 * neighbour's engine nor for the lease after which gc would take them over.
 * The neighbour's engine, let go, skips what was taken (its claim fails)
 * and never writes into the new objects; every freed byte is zeroed once. */
START_TEST(allocate_takes_another_clients_queue)
{
	engine_only();
	struct l1_arena *a = create("zother", 16 * MiB, 1), *b;
	struct l1_open_opts oo;
	struct l1_zero_split za, zb;
	static struct l1_obj o[12], p[12];
	l1_open_opts_init(&oo);
	oo.pin = L1_PIN_OFF;
	ck_assert_int_eq(l1_arena_open(l1_arena_path(a), &oo, &b), 0);
	atomic_store(&engine_go, 0);
	l1_test_set_hook(a, hold_engine);
	ck_assert_int_eq(l1_alloc_bytes(a, MiB, 12, o), 0);
	for (int i = 0; i < 12; i++)
		memset(o[i].ptr, 0x77, o[i].size);
	ck_assert_int_eq(l1_free(a, o, 12), 0);
	ck_assert_uint_eq(a->h->dirty_bytes, 12 * MiB);
	ck_assert_msg(l1_alloc_bytes(b, MiB, 12, p) == 0, "allocate beside a held engine: %s",
		      l1_last_error());
	for (int i = 0; i < 12; i++) {
		ck_assert_msg(l1t_is_zero(p[i].ptr, p[i].size), "object %d handed out dirty", i);
		memset(p[i].ptr, 0x55, p[i].size);
	}
	ck_assert_int_eq(l1_arena_zero_split(b, &zb), 0);
	ck_assert_uint_gt(zb.by_allocate, 0);           /* it took the neighbour's, */
	ck_assert_uint_eq(a->h->gc_requeued, 0);        /* not after a takeover */
	atomic_store(&engine_go, 1);
	ck_assert_int_eq(l1_arena_flush(a, 20000), 0);
	for (int i = 0; i < 12; i++) {                  /* the neighbour kept off */
		const uint8_t *q = p[i].ptr;
		for (uint64_t k = 0; k < p[i].size; k += 4096)
			ck_assert_msg(q[k] == 0x55, "object %d: byte %llu written by the "
				      "neighbour's engine", i, (unsigned long long)k);
	}
	ck_assert_int_eq(l1_free(b, p, 12), 0);
	ck_assert_int_eq(l1_arena_flush(b, 20000), 0);
	ck_assert_int_eq(l1_arena_flush(a, 20000), 0);
	ck_assert_int_eq(l1_arena_zero_split(a, &za), 0);
	ck_assert_int_eq(l1_arena_zero_split(b, &zb), 0);
	ck_assert_uint_eq(za.by_allocate + za.by_engine + za.by_free + zb.by_allocate +
			  zb.by_engine + zb.by_free, 24 * MiB);
	ck_assert_uint_eq(b->h->dirty_bytes, 0);
	ck_assert_uint_eq(b->h->used_bytes, 0);
	l1t_memcheck_clean(a);
	l1_arena_close(b);
	l1t_destroy(a);
	engine_default();
}
END_TEST

static uint64_t step_dirty[32];
static atomic_uint nsteps;

/* The freeing thread, after each step it handed back: what is still dirty. */
static void count_steps(struct l1_arena *a, int where)
{
	unsigned k;
	if (where != L1_HOOK_ZINLINE_STEP || (k = atomic_fetch_add(&nsteps, 1)) >= 32)
		return;
	step_dirty[k] = a->h->dirty_bytes;
}

/* A free that zeroes its own extents (here: any size) hands them back 4 MiB
 * at a time: one 24 MiB extent (eight 3 MiB objects freed together join one
 * entry) goes back in six steps, the dirty bytes falling 4 MiB a step, and
 * extents that do not join (freed backwards) are released as the steps
 * cover them, the last step taking what is left.  Every byte ends zero,
 * the bitmap and counters agree (memcheck), and it was all zeroed at free. */
START_TEST(free_hands_back_step_by_step)
{
	setenv("L1ARENA_ZINLINE", "0x10000000", 1);     /* every free zeroes its own */
	struct l1_arena *a = create("zstep", 64 * MiB, 1);
	static struct l1_obj o[8], rev[8];
	struct l1_zero_split z;
	for (int pass = 0; pass < 2; pass++) {
		ck_assert_int_eq(l1_alloc_bytes(a, 3 * MiB, 8, o), 0);
		for (int i = 0; i < 8; i++) {
			memset(o[i].ptr, 0x6b, o[i].size);
			rev[i] = o[7 - i];
		}
		atomic_store(&nsteps, 0);
		l1_test_set_hook(a, count_steps);
		ck_assert_int_eq(l1_free(a, pass ? rev : o, 8), 0);
		l1_test_set_hook(a, NULL);
		unsigned n = atomic_load(&nsteps);
		ck_assert_uint_eq(n, 6);                        /* 24 MiB, 4 at a time */
		for (unsigned k = 0; k < n; k++)
			ck_assert_uint_eq(step_dirty[k], 24 * MiB - (k + 1) * 4 * MiB);
		for (int i = 0; i < 8; i++)
			ck_assert(l1t_is_zero(o[i].ptr, o[i].size));
		l1t_memcheck_clean(a);
	}
	ck_assert_int_eq(l1_arena_zero_split(a, &z), 0);
	ck_assert_uint_eq(z.by_free, 48 * MiB);
	ck_assert_uint_eq(z.by_engine + z.by_allocate, 0);
	l1t_destroy(a);
	engine_default();
}
END_TEST

/* Fills a 64 MiB pool with 1 MiB objects; o[i] lies at i MiB. */
static uint32_t fill_mib(struct l1_arena *a, struct l1_obj *o, uint32_t max)
{
	uint32_t n = 0;
	while (n < max && l1_alloc_bytes(a, MiB, 1, &o[n]) == 0) {
		ck_assert_uint_eq(o[n].offset, o[0].offset + n * MiB);
		n++;
	}
	return n;
}

START_TEST(large_takes_the_tightest_hole)
{
	setenv("L1ARENA_PLACE", "best", 1);     /* read once per process: a fork */
	struct l1_arena *a = create("zplace", 64 * MiB, 0);
	static struct l1_obj o[64];
	uint32_t n = fill_mib(a, o, 64);
	ck_assert_uint_ge(n, 40);
	uint64_t base = o[0].offset;
	ck_assert_int_eq(l1_free(a, &o[2], 6), 0);      /* a 6 MiB hole at 2 MiB */
	ck_assert_int_eq(l1_free(a, &o[20], 2), 0);     /* a 2 MiB hole at 20 */
	ck_assert_int_eq(l1_free(a, &o[30], 4), 0);     /* a 4 MiB hole at 30 */
	struct l1_obj big, batch[4], small;
	ck_assert_int_eq(l1_alloc_bytes(a, 2 * MiB, 1, &big), 0);
	ck_assert_uint_eq(big.offset, base + 20 * MiB); /* first fit: 2 MiB */
	ck_assert_int_eq(l1_alloc_bytes(a, MiB, 4, batch), 0);
	for (int i = 0; i < 4; i++)                     /* one run, the exact hole */
		ck_assert_uint_eq(batch[i].offset, base + (30 + (uint64_t)i) * MiB);
	ck_assert_int_eq(l1_alloc_bytes(a, 64 * KiB, 1, &small), 0);
	ck_assert_uint_eq(small.offset, base + 2 * MiB); /* small: the lowest hole */
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("zhelp");
	TCase *t = tcase_create("help");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, allocate_after_free_reads_zero);
	tcase_add_loop_test(t, two_threads_race_the_engine, 0, 3);
	tcase_add_test(t, small_free_zeroed_by_the_freer);
	tcase_add_test(t, separate_small_frees_zeroed_by_the_freer);
	tcase_add_test(t, one_claim_for_engine_and_helpers);
	tcase_add_test(t, help_window_beside_the_entry_is_clean);
	tcase_add_test(t, allocate_takes_another_clients_queue);
	tcase_add_test(t, free_hands_back_step_by_step);
	suite_add_tcase(s, t);
	t = tcase_create("place");
	tcase_add_test(t, large_takes_the_tightest_hole);
	suite_add_tcase(s, t);
	return l1t_run_suite(s);
}
