/*
 * check_zeroing.c - zero-on-free through a real pool: freed bytes read zero
 * when allocated again; random interleavings of allocate/free/flush keep
 * memcheck clean and never hand out a dirty byte; free of a large object
 * returns while the object is still dirty (the engine, not the caller,
 * zeroes it); a process killed with zeroing in flight leaves nothing dirty
 * after gc; the memset fallback does the same job and says so.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "l1arena_test.h"
#include "testutil.h"

#define MiB (1ull << 20)

static struct l1_arena *create_zeroing(const char *name, uint64_t size, int method)
{
	struct l1_config c;
	struct l1_arena *a;
	l1t_config(&c, name, size);
	c.zero_method = method;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	return a;
}

static void reuse_reads_zero(struct l1_arena *a)
{
	static struct l1_obj o[32], p[32];
	ck_assert_int_eq(l1_alloc_bytes(a, 256 * 1024, 32, o), 0);   /* the whole pool */
	for (int i = 0; i < 32; i++)
		l1t_fill(o[i].ptr, o[i].size, 77 + (uint64_t)i);
	ck_assert_int_eq(l1_free(a, o, 32), 0);
	ck_assert_int_eq(l1_alloc_bytes(a, 256 * 1024, 32, p), 0);   /* waits for zeroing */
	for (int i = 0; i < 32; i++)
		ck_assert_msg(l1t_is_zero(p[i].ptr, p[i].size), "object %d not zeroed", i);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_ge(u.zeroed_bytes, 8 * MiB);
	l1t_memcheck_clean(a);
}

START_TEST(freed_bytes_read_zero)
{
	struct l1_arena *a = create_zeroing("zreuse", 8 * MiB, L1_ZERO_AUTO);
	reuse_reads_zero(a);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_msg(strstr(u.zero_method, "io_uring") || strstr(u.zero_method, "memset"),
		      "method '%s'", u.zero_method);
	l1t_destroy(a);
}
END_TEST

START_TEST(memset_fallback_by_config)
{
	struct l1_arena *a = create_zeroing("zmemset", 8 * MiB, L1_ZERO_MEMSET);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_ptr_nonnull(strstr(u.zero_method, "memset"));
	reuse_reads_zero(a);
	l1t_destroy(a);
}
END_TEST

START_TEST(memset_fallback_by_env)
{
	setenv("L1ARENA_ZERO", "memset", 1);
	struct l1_arena *a = create_zeroing("zenv", 8 * MiB, L1_ZERO_AUTO);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_ptr_nonnull(strstr(u.zero_method, "memset"));
	reuse_reads_zero(a);
	struct l1_client_info ci[2];
	ck_assert_int_eq(l1_arena_clients(a, ci, 2), 1);
	ck_assert_ptr_nonnull(strstr(ci[0].zero_method, "memset"));
	l1t_destroy(a);
	unsetenv("L1ARENA_ZERO");
}
END_TEST

START_TEST(random_interleavings)
{
	struct l1_arena *a = create_zeroing("zrand", 16 * MiB, L1_ZERO_AUTO);
	static struct l1_obj live[512];
	int nlive = 0;
	srandom(42 + (unsigned)_i);
	for (int step = 0; step < 400; step++) {
		int op = (int)(random() % 10);
		if (op < 5 && nlive < 480) {
			uint32_t n = 1 + (uint32_t)(random() % 16);
			uint64_t sz = 4096ull << (random() % 6);
			int r = l1_alloc_bytes(a, sz, n, live + nlive);
			ck_assert_msg(r == 0 || r == -ENOMEM, "alloc: %s", l1_last_error());
			if (r == 0) {
				for (uint32_t j = 0; j < n; j++) {
					struct l1_obj *o = &live[nlive + (int)j];
					ck_assert_msg(l1t_is_zero(o->ptr, o->size),
						      "step %d: allocated bytes not zero", step);
					l1t_fill(o->ptr, o->size, o->id);
				}
				nlive += (int)n;
			}
		} else if (op < 9 && nlive) {
			int n = 1 + (int)(random() % (nlive < 8 ? nlive : 8));
			for (int j = 0; j < n; j++) {  /* free n random objects */
				int k = (int)(random() % nlive);
				struct l1_obj t = live[k];
				live[k] = live[nlive - 1];
				live[nlive - 1] = t;
				ck_assert(l1t_check(t.ptr, t.size, t.id));
				ck_assert_int_eq(l1_free(a, &live[nlive - 1], 1), 0);
				nlive--;
			}
		} else {
			ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
		}
		l1t_memcheck_clean(a);
	}
	ck_assert_int_eq(l1_free(a, live, (uint32_t)nlive), 0);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

static volatile int gate;       /* 1: the engine's completion waits */

static void hold_completion(struct l1_arena *a, int where)
{
	(void)a;
	while (where == L1_HOOK_ZERO_DONE && __atomic_load_n(&gate, __ATOMIC_ACQUIRE))
		usleep(1000);
}

START_TEST(large_free_returns_dirty)
{
	uint64_t size = l1t_on_hugetlbfs() ? 512 * MiB : 256 * MiB;
	struct l1_arena *a = create_zeroing("zlarge", size, L1_ZERO_AUTO);
	struct l1_obj o;
	ck_assert_int_eq(l1_alloc_bytes(a, size - 64 * MiB, 1, &o), 0);
	memset(o.ptr, 0xee, o.size);
	gate = 1;
	l1_test_set_hook(a, hold_completion);
	ck_assert_int_eq(l1_free(a, &o, 1), 0);
	/* free has returned; the object is still dirty: the engine owns it */
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.dirty_bytes, o.size);
	ck_assert_uint_eq(u.used_bytes, 0);
	__atomic_store_n(&gate, 0, __ATOMIC_RELEASE);
	ck_assert_int_eq(l1_arena_flush(a, 60000), 0);
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.dirty_bytes, 0);
	ck_assert(l1t_is_zero(o.ptr, o.size));
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

static void die_in_completion(struct l1_arena *a, int where)
{
	(void)a;
	if (where == L1_HOOK_ZERO_DONE)
		raise(SIGKILL);
}

START_TEST(killed_with_zeroing_in_flight)
{
	struct l1_arena *a = create_zeroing("zkill", 64 * MiB, L1_ZERO_AUTO);
	const char *path = l1_arena_path(a);
	pid_t kid = fork();
	if (kid == 0) {
		struct l1_arena *b;
		static struct l1_obj o[48];
		/* the engine gets every extent, however large its backlog (zhelp.c) */
		setenv("L1ARENA_ZBACKLOG", "0x7fffffffffffffff", 1);
		if (l1_arena_open(path, NULL, &b) || l1_alloc_bytes(b, MiB, 48, o))
			_exit(1);
		for (int i = 0; i < 48; i++)
			memset(o[i].ptr, 0x77, o[i].size);
		l1_test_set_hook(b, die_in_completion);   /* dies inside the lock */
		static struct l1_obj rev[48];   /* backwards: no two join one entry */
		for (int i = 0; i < 48; i++)
			rev[i] = o[47 - i];
		l1_test_dirty_limit(b, 8);      /* 8 in the dirty-extent table, 40 records */
		l1_free(b, rev, 48);
		pause();
		_exit(2);
	}
	ck_assert_int_eq(l1t_wait(kid), 128 + SIGKILL);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	/* killed at its first release: all 48 still dirty; the 8 whose extents
	 * went to the table gave their records back at once, 40 stayed DIRTY */
	ck_assert_uint_eq(u.dirty_bytes, 48 * MiB);
	ck_assert_uint_eq(u.objects[L1_STATE_DIRTY], 48);        /* 8 extents, 40 records */
	ck_assert_uint_eq(u.objects[L1_STATE_FREE], u.max_objects - 40);
	struct l1_gc_result g;
	ck_assert_int_eq(l1_arena_gc(a, &g), 0);
	ck_assert_int_eq(l1_arena_flush(a, 30000), 0);
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.dirty_bytes, 0);
	ck_assert_uint_eq(u.used_bytes, 0);
	ck_assert_uint_eq(u.repairs, 1);
	l1t_memcheck_clean(a);
	static struct l1_obj p[64];
	ck_assert_int_eq(l1_alloc_bytes(a, MiB, 64, p), 0);
	for (int i = 0; i < 64; i++)
		ck_assert(l1t_is_zero(p[i].ptr, p[i].size));
	l1t_destroy(a);
}
END_TEST

/* With zero-on-free a freed object's record goes back at once (its bytes
 * wait in the dirty-extent table), so the next allocation reuses the
 * record; the bytes it gets are zero whatever it reuses.  With the table
 * limited, the rest stay DIRTY records: both kinds end zeroed and clean. */
START_TEST(records_back_before_bytes)
{
	struct l1_arena *a = create_zeroing("zrec", 8 * MiB, L1_ZERO_AUTO);
	static struct l1_obj o[16], p[16], rev[16];
	struct l1_usage u;
	for (int round = 0; round < 2; round++) {
		if (round == 1)
			l1_test_dirty_limit(a, 4);
		ck_assert_int_eq(l1_alloc_bytes(a, 256 * 1024, 16, o), 0);
		for (int i = 0; i < 16; i++) {
			l1t_fill(o[i].ptr, o[i].size, 5 + (uint64_t)i);
			rev[i] = o[15 - i];
		}
		/* round 0: back to back, one entry; round 1: backwards, one entry
		 * each until the limit, then DIRTY records */
		ck_assert_int_eq(l1_free(a, round ? rev : o, 16), 0);
		l1_arena_usage(a, &u);
		if (round == 1)
			ck_assert_uint_ge(u.objects[L1_STATE_FREE], u.max_objects - 12);
		l1t_memcheck_clean(a);
		ck_assert_int_eq(l1_alloc_bytes(a, 256 * 1024, 16, p), 0);
		for (int i = 0; i < 16; i++) {
			int reused = 0;
			for (int k = 0; k < 16; k++)
				reused |= (uint32_t)p[i].id == (uint32_t)o[k].id;
			if (round == 0)
				ck_assert_msg(reused, "object %d: its record is not a freed one", i);
			ck_assert_msg(l1t_is_zero(p[i].ptr, p[i].size), "object %d not zero", i);
		}
		ck_assert_int_eq(l1_free(a, p, 16), 0);
		ck_assert_int_eq(l1_arena_flush(a, 30000), 0);
		l1_arena_usage(a, &u);
		ck_assert_uint_eq(u.dirty_bytes, 0);
		ck_assert_uint_eq(u.objects[L1_STATE_DIRTY], 0);
		ck_assert_uint_eq(u.objects[L1_STATE_FREE], u.max_objects);
		l1t_memcheck_clean(a);
	}
	l1t_destroy(a);
}
END_TEST

START_TEST(zero_on_free_off)
{
	struct l1_config c;
	struct l1_arena *a;
	l1t_config(&c, "zoff", 8 * MiB);
	c.zero_on_free = 0;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	struct l1_obj o;
	ck_assert_int_eq(l1_alloc_bytes(a, MiB, 1, &o), 0);
	ck_assert_int_eq(l1_free(a, &o, 1), 0);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.dirty_bytes, 0);
	ck_assert_uint_eq(u.used_bytes, 0);
	ck_assert_str_eq(u.zero_method, "off");
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("zeroing");
	TCase *t = tcase_create("reuse");
	tcase_add_test(t, freed_bytes_read_zero);
	tcase_add_test(t, zero_on_free_off);
	tcase_add_test(t, records_back_before_bytes);
	suite_add_tcase(s, t);
	t = tcase_create("fallback");
	tcase_add_test(t, memset_fallback_by_config);
	tcase_add_test(t, memset_fallback_by_env);
	suite_add_tcase(s, t);
	t = tcase_create("interleavings");
	tcase_set_timeout(t, 120);
	tcase_add_loop_test(t, random_interleavings, 0, 3);
	suite_add_tcase(s, t);
	t = tcase_create("async");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, large_free_returns_dirty);
	tcase_add_test(t, killed_with_zeroing_in_flight);
	suite_add_tcase(s, t);
	return l1t_run_suite(s);
}
