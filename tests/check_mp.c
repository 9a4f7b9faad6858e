/*
 * check_mp.c - the pool shared by processes that really fork: many writers
 * allocating and freeing at once end with memcheck clean; a process killed
 * while it holds the pool lock (parked there by the test hook) leaves a pool
 * that the next locker repairs; objects written and published in one
 * process are read by key in another; what a dead writer left unpublished
 * is reclaimed by gc while its published objects survive.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "l1arena_test.h"
#include "testutil.h"

#define MiB (1ull << 20)

static struct l1_arena *attach_or_die(const char *path)
{
	struct l1_arena *a;
	if (l1_arena_open(path, NULL, &a) != 0)
		_exit(100);
	return a;
}

START_TEST(concurrent_alloc_free)
{
	struct l1_arena *a = l1t_create("mp", 64 * MiB);
	const char *path = l1_arena_path(a);
	enum { NPROC = 4, ROUNDS = 400 };
	pid_t kids[NPROC];
	for (int k = 0; k < NPROC; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			struct l1_arena *b = attach_or_die(path);
			struct l1_obj o[16];
			srandom((unsigned)getpid());
			for (int i = 0; i < ROUNDS; i++) {
				uint32_t n = 1 + (uint32_t)(random() % 16);
				uint64_t sz = 4096ull * (1 + (uint64_t)(random() % 8));
				int r = l1_alloc_bytes(b, sz, n, o);
				if (r == -ENOMEM)
					continue;
				if (r) {
					fprintf(stderr, "alloc: %s\n", l1_last_error());
					_exit(1);
				}
				for (uint32_t j = 0; j < n; j++)
					l1t_fill(o[j].ptr, o[j].size, o[j].id);
				for (uint32_t j = 0; j < n; j++)
					if (!l1t_check(o[j].ptr, o[j].size, o[j].id))
						_exit(2);   /* someone else wrote our bytes */
				if (l1_free(b, o, n))
					_exit(3);
			}
			l1_arena_close(b);
			_exit(0);
		}
	}
	for (int k = 0; k < NPROC; k++)
		ck_assert_int_eq(l1t_wait(kids[k]), 0);
	ck_assert_int_eq(l1_arena_flush(a, 30000), 0);
	l1t_memcheck_clean(a);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.used_bytes, 0);
	ck_assert_uint_eq(u.dirty_bytes, 0);
	ck_assert_uint_eq(u.objects[L1_STATE_FREE], u.max_objects);
	ck_assert_uint_eq(u.clients, 1);
	l1t_destroy(a);
}
END_TEST

static int park_fd = -1;
static int park_where;

static void park_hook(struct l1_arena *a, int where)
{
	(void)a;
	if (where != park_where)
		return;
	if (write(park_fd, "p", 1) != 1)
		_exit(5);
	for (;;)
		pause();
}

static void killed_in_lock(int where)
{
	struct l1_config c;
	struct l1_arena *a;
	l1t_config(&c, "lockkill", 16 * MiB);
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	const char *path = l1_arena_path(a);
	struct l1_obj keep;
	ck_assert_int_eq(l1_alloc_bytes(a, 4096, 1, &keep), 0);
	l1t_fill(keep.ptr, 4096, 99);
	ck_assert_int_eq(l1_publish(a, keep.id, "survivor"), 0);
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t kid = fork();
	if (kid == 0) {
		struct l1_arena *b = attach_or_die(path);
		struct l1_obj o[32];
		close(p[0]);
		park_fd = p[1];
		park_where = where;
		if (where == L1_HOOK_FREE_MID || where == L1_HOOK_PUBLISH) {
			if (l1_alloc_bytes(b, 8192, 32, o))
				_exit(6);
			l1_test_set_hook(b, park_hook);
			if (where == L1_HOOK_PUBLISH)
				l1_publish(b, o[0].id, "halfway");
			else
				l1_free(b, o, 32);
		} else {
			l1_test_set_hook(b, park_hook);
			l1_alloc_bytes(b, 8192, 32, o);
		}
		_exit(7);
	}
	close(p[1]);
	char ch;
	ck_assert_int_eq(read(p[0], &ch, 1), 1);  /* the child is inside the lock */
	close(p[0]);
	kill(kid, SIGKILL);
	ck_assert_int_eq(l1t_wait(kid), 128 + SIGKILL);
	/* the next locker repairs, and the pool serves */
	struct l1_obj o[8], f;
	ck_assert_int_eq(l1_alloc_bytes(a, 8192, 8, o), 0);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.repairs, 1);
	l1t_memcheck_clean(a);
	ck_assert_int_eq(l1_lookup(a, "survivor", &f), 0);
	ck_assert(l1t_check(f.ptr, 4096, 99));
	struct l1_gc_result g;
	ck_assert_int_eq(l1_arena_gc(a, &g), 0);
	ck_assert_uint_eq(g.clients_dropped, 1);
	ck_assert_int_eq(l1_free(a, o, 8), 0);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	l1t_memcheck_clean(a);
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.used_bytes, 4096);   /* only the survivor */
	l1t_destroy(a);
}

START_TEST(killed_holding_lock_alloc) { killed_in_lock(L1_HOOK_ALLOC_CLAIMED); }
END_TEST
START_TEST(killed_holding_lock_free) { killed_in_lock(L1_HOOK_FREE_MID); }
END_TEST
START_TEST(killed_holding_lock_publish) { killed_in_lock(L1_HOOK_PUBLISH); }
END_TEST

START_TEST(read_by_key_in_other_process)
{
	struct l1_arena *a = l1t_create("xproc", 16 * MiB);
	const char *path = l1_arena_path(a);
	pid_t kid = fork();
	if (kid == 0) {
		struct l1_arena *b = attach_or_die(path);
		struct l1_layout l;
		struct l1_obj o[4];
		char key[32];
		if (l1_layout_parse("[2,32,128]:fp16", &l) || l1_alloc(b, &l, 4, o))
			_exit(1);
		for (int i = 0; i < 4; i++) {
			l1t_fill(o[i].ptr, o[i].size, 1000 + (uint64_t)i);
			snprintf(key, sizeof key, "req7/chunk%d", i);
			if (l1_publish(b, o[i].id, key))
				_exit(2);
		}
		/* exit without detaching: published objects survive their writer */
		_exit(0);
	}
	ck_assert_int_eq(l1t_wait(kid), 0);
	struct l1_gc_result g;
	ck_assert_int_eq(l1_arena_gc(a, &g), 0);
	ck_assert_uint_eq(g.objects_reclaimed, 0);
	for (int i = 0; i < 4; i++) {
		char key[32];
		struct l1_obj f;
		snprintf(key, sizeof key, "req7/chunk%d", i);
		ck_assert_int_eq(l1_hold_key(a, key, &f), 0);
		ck_assert_uint_eq(f.size, 16384);
		ck_assert(l1t_check(f.ptr, f.size, 1000 + (uint64_t)i));
		ck_assert_int_eq(l1_release(a, f.id), 0);
	}
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

START_TEST(gc_reclaims_dead_writer)
{
	struct l1_arena *a = l1t_create("gc", 16 * MiB);
	const char *path = l1_arena_path(a);
	struct l1_obj mine;
	ck_assert_int_eq(l1_alloc_bytes(a, 4096, 1, &mine), 0);
	ck_assert_int_eq(l1_publish(a, mine.id, "parent"), 0);
	pid_t kid = fork();
	if (kid == 0) {
		struct l1_arena *b = attach_or_die(path);
		struct l1_obj o[10], h;
		if (l1_alloc_bytes(b, 65536, 10, o))
			_exit(1);
		if (l1_publish(b, o[0].id, "kept"))
			_exit(2);
		if (l1_hold_key(b, "parent", &h))
			_exit(3);
		_exit(0);       /* dies with 9 unpublished objects and a hold */
	}
	ck_assert_int_eq(l1t_wait(kid), 0);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.objects[L1_STATE_ALLOCATED], 9);
	ck_assert_uint_eq(u.holds, 1);
	ck_assert_int_eq(l1_free(a, &mine, 1), 0);       /* held by the dead child */
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.objects[L1_STATE_DOOMED], 1);
	struct l1_stats st;                     /* freed but held: counted as such */
	ck_assert_int_eq(l1_arena_stats(a, &st), 0);
	ck_assert_uint_eq(st.doomed_bytes, 4096);
	ck_assert_uint_eq(st.doomed_objects, 1);
	ck_assert_uint_eq(st.gc_holds_dropped + st.gc_clients_dropped + st.gc_objects_reclaimed, 0);
	struct l1_gc_result g;
	ck_assert_int_eq(l1_arena_gc(a, &g), 0);
	ck_assert_uint_eq(g.objects_reclaimed, 9);
	ck_assert_uint_eq(g.bytes_reclaimed, 9 * 65536);
	ck_assert_uint_eq(g.holds_dropped, 1);
	ck_assert_uint_eq(g.clients_dropped, 1);
	ck_assert_int_eq(l1_arena_stats(a, &st), 0);    /* the pool keeps gc's totals */
	ck_assert_uint_eq(st.gc_objects_reclaimed, 9);
	ck_assert_uint_eq(st.gc_holds_dropped, 1);
	ck_assert_uint_eq(st.gc_clients_dropped, 1);
	ck_assert_uint_eq(st.doomed_bytes, 0);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.objects[L1_STATE_ALLOCATED], 0);
	ck_assert_uint_eq(u.objects[L1_STATE_DOOMED], 0);
	ck_assert_uint_eq(u.objects[L1_STATE_PUBLISHED], 1);
	ck_assert_uint_eq(u.used_bytes, 65536);
	struct l1_obj f;
	ck_assert_int_eq(l1_lookup(a, "kept", &f), 0);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

START_TEST(zeroed_before_reuse_across_processes)
{
	struct l1_arena *a = l1t_create("zx", 8 * MiB);
	const char *path = l1_arena_path(a);
	static struct l1_obj o[64];
	ck_assert_int_eq(l1_alloc_bytes(a, 128 * 1024, 64, o), 0);   /* the whole pool */
	for (int i = 0; i < 64; i++)
		l1t_fill(o[i].ptr, o[i].size, (uint64_t)i);
	ck_assert_int_eq(l1_free(a, o, 64), 0);
	pid_t kid = fork();
	if (kid == 0) {
		struct l1_arena *b = attach_or_die(path);
		static struct l1_obj p[64];
		/* allocate waits for the zeroing rather than fail or see old bytes */
		if (l1_alloc_bytes(b, 128 * 1024, 64, p))
			_exit(1);
		for (int i = 0; i < 64; i++)
			if (!l1t_is_zero(p[i].ptr, p[i].size))
				_exit(2);
		_exit(0);
	}
	ck_assert_int_eq(l1t_wait(kid), 0);
	ck_assert_int_eq(l1_arena_gc(a, NULL), 0);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("multiprocess");
	TCase *t = tcase_create("concurrency");
	tcase_set_timeout(t, 120);
	tcase_add_test(t, concurrent_alloc_free);
	suite_add_tcase(s, t);
	t = tcase_create("lock_owner_dies");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, killed_holding_lock_alloc);
	tcase_add_test(t, killed_holding_lock_free);
	tcase_add_test(t, killed_holding_lock_publish);
	suite_add_tcase(s, t);
	t = tcase_create("sharing");
	tcase_add_test(t, read_by_key_in_other_process);
	tcase_add_test(t, gc_reclaims_dead_writer);
	tcase_add_test(t, zeroed_before_reuse_across_processes);
	suite_add_tcase(s, t);
	return l1t_run_suite(s);
}
