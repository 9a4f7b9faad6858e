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
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

/* ... and also the engine's write, once it claimed the extent (so that an
 * allocation cannot take the extent to zero it itself, zhelp.c, and waits) */
static volatile int claimed;

static void hold_claimed(struct l1_arena *a, int where)
{
	if (where == L1_HOOK_ZERO_CLAIMED)
		__atomic_store_n(&claimed, 1, __ATOMIC_RELEASE);
	while (where == L1_HOOK_ZERO_CLAIMED && __atomic_load_n(&gate, __ATOMIC_ACQUIRE))
		usleep(1000);
	hold_completion(a, where);
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

static void *open_gate_later(void *arg)
{
	(void)arg;
	/* long enough that the allocation is waiting by then even in a slow
	 * (sanitizer) build, well inside allocate's 5 s stall bound */
	usleep(1000000);
	__atomic_store_n(&gate, 0, __ATOMIC_RELEASE);
	return NULL;
}

/* An allocation that finds only dirty memory in the engine's hands waits
 * for the zeroing, and the pool counts it (l1_arena_stats: zero_waits, zero_wait_ns), for every
 * process and tool to see; gc's drops are counted the same way. */
START_TEST(zero_waits_are_counted)
{
	struct l1_arena *a = create_zeroing("zwait", 16 * MiB, L1_ZERO_AUTO);
	struct l1_stats s0, s1;
	struct l1_obj o;
	pthread_t t;
	ck_assert_int_eq(l1_arena_stats(a, &s0), 0);
	ck_assert_int_eq(l1_alloc_bytes(a, 12 * MiB, 1, &o), 0);
	gate = 1;
	claimed = 0;
	l1_test_set_hook(a, hold_claimed);
	ck_assert_int_eq(l1_free(a, &o, 1), 0);
	while (!__atomic_load_n(&claimed, __ATOMIC_ACQUIRE))
		usleep(1000);   /* the engine has it */
	ck_assert_int_eq(pthread_create(&t, NULL, open_gate_later, NULL), 0);
	ck_assert_int_eq(l1_alloc_bytes(a, 12 * MiB, 1, &o), 0);   /* only dirty room */
	pthread_join(t, NULL);
	ck_assert_int_eq(l1_arena_stats(a, &s1), 0);
	ck_assert_uint_eq(s1.zero_waits, s0.zero_waits + 1);
	ck_assert_uint_gt(s1.zero_wait_ns, s0.zero_wait_ns);
	ck_assert(l1t_is_zero(o.ptr, o.size));
	ck_assert_int_eq(l1_free(a, &o, 1), 0);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	ck_assert_int_eq(l1_arena_stats(a, &s0), 0);
	ck_assert_uint_eq(s0.zero_waits, s1.zero_waits);          /* no wait: no count */
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
		/* the engine gets every extent, however large its backlog (zfree.c) */
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


/* ---- a stopped zeroer ---------------------------------------------------- */

static int stop_fd = -1;
static volatile int freed_all;

/* Engine thread, about to write its first extent: once the free has left
 * the lock, tell the test and stop the whole process (SIGSTOP). */
static void stop_before_write(struct l1_arena *a, int where)
{
	(void)a;
	if (where != L1_HOOK_ZERO_ISSUE || stop_fd < 0)
		return;
	int fd = stop_fd;
	stop_fd = -1;
	while (!freed_all)
		usleep(1000);
	(void)!write(fd, "s", 1);
	raise(SIGSTOP);
}

/* A process frees 24 MiB of a 32 MiB pool and is stopped before its engine
 * writes a byte: its dirty extents belong to a live process.  Another
 * process's allocate of 16 MiB must still succeed (once the lease ran out,
 * its gc takes the extents over under new generations and zeroes them),
 * and flush too (alone, too: _i 2); when the stopped one goes on, its engine must neither
 * write those extents (they are someone's objects now) nor release them
 * again. */
START_TEST(stopped_zeroer_taken_over)
{
	if (L1T_TSAN) {
		fprintf(stderr, "stopped_zeroer_taken_over: skipped under ThreadSanitizer (its "
			"child starts threads after fork); the plain and ASan passes run it\n");
		return;
	}
	int method = _i == 1 ? L1_ZERO_MEMSET : L1_ZERO_AUTO;
	struct l1_arena *a = create_zeroing("zstop", 32 * MiB, method);
	const char *path = l1_arena_path(a);
	int sp[2], go[2];
	ck_assert_int_eq(pipe(sp), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid_t kid = fork();
	if (kid == 0) {
		struct l1_arena *b;
		struct l1_open_opts oo;
		static struct l1_obj o[24], rev[24];
		char c;
		close(sp[0]);
		close(go[1]);
		l1_open_opts_init(&oo);
		oo.pin = L1_PIN_OFF;
		oo.zero_method = method;
		if (l1_arena_open(path, &oo, &b) || l1_alloc_bytes(b, MiB, 24, o))
			_exit(1);
		for (int i = 0; i < 24; i++) {
			memset(o[i].ptr, 0x77, o[i].size);
			rev[i] = o[23 - i];     /* backwards: no two join one entry */
		}
		l1_test_dirty_limit(b, 8);      /* 8 table entries, 16 DIRTY records */
		stop_fd = sp[1];
		l1_test_set_hook(b, stop_before_write);
		if (l1_free(b, rev, 24))
			_exit(2);
		freed_all = 1;
		if (read(go[0], &c, 1) != 1)    /* after SIGCONT */
			_exit(3);
		char rep[4096];
		if (l1_arena_memcheck(b, 0, rep, sizeof rep)) {
			fprintf(stderr, "%s", rep);
			_exit(4);
		}
		l1_arena_close(b);
		_exit(0);
	}
	close(sp[1]);
	close(go[0]);
	char c;
	int st;
	ck_assert_int_eq(read(sp[0], &c, 1), 1);
	ck_assert_int_eq(waitpid(kid, &st, WUNTRACED), kid);
	ck_assert(WIFSTOPPED(st));
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.dirty_bytes, 24 * MiB);
	if (_i == 2)    /* flush alone must get there too (gc again past the lease) */
		ck_assert_msg(l1_arena_flush(a, 20000) == 0, "flush with a stopped zeroer: %s",
			      l1_last_error());
	static struct l1_obj p[16];
	ck_assert_msg(l1_alloc_bytes(a, MiB, 16, p) == 0, "allocate with a stopped zeroer: %s",
		      l1_last_error());
	for (int i = 0; i < 16; i++) {
		ck_assert_msg(l1t_is_zero(p[i].ptr, p[i].size), "object %d not zero", i);
		memset(p[i].ptr, 0x55, p[i].size);
	}
	ck_assert_int_eq(l1_arena_flush(a, 20000), 0);  /* the rest of its extents too */
	l1t_memcheck_clean(a);
	ck_assert_int_eq(kill(kid, SIGCONT), 0);
	ck_assert_int_eq(write(go[1], "g", 1), 1);
	ck_assert_int_eq(l1t_wait(kid), 0);
	for (int i = 0; i < 16; i++) {
		const uint8_t *b = p[i].ptr;
		for (uint64_t k = 0; k < p[i].size; k += 4096)
			ck_assert_msg(b[k] == 0x55, "object %d: byte %llu changed after the stopped "
				      "zeroer went on", i, (unsigned long long)k);
	}
	l1t_memcheck_clean(a);
	ck_assert_int_eq(l1_free(a, p, 16), 0);
	ck_assert_int_eq(l1_arena_flush(a, 20000), 0);
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.dirty_bytes, 0);
	ck_assert_uint_eq(u.used_bytes, 0);
	ck_assert_uint_eq(u.clients, 1);
	l1t_memcheck_clean(a);
	close(sp[0]);
	close(go[1]);
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
	tcase_add_test(t, zero_waits_are_counted);
	tcase_add_test(t, killed_with_zeroing_in_flight);
	suite_add_tcase(s, t);
	t = tcase_create("stopped");
	tcase_set_timeout(t, 60);
	tcase_add_loop_test(t, stopped_zeroer_taken_over, 0, 3);
	suite_add_tcase(s, t);
	return l1t_run_suite(s);
}
