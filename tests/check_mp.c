/*
 * check_mp.c - the pool shared by processes that really fork: many writers
 * allocating and freeing at once end with memcheck clean; a process killed
 * while it holds the pool lock (parked there by the test hook) leaves a pool
 * that the next locker repairs; objects written and published in one
 * process are read by key in another; what a dead writer left unpublished
 * is reclaimed by gc while its published objects survive.  Liveness across
 * namespaces: a writer and a holder in their own PID namespace keep their
 * object and hold through gc from the host and from a third namespace, and
 * are reclaimed once dead; gc by an unprivileged user under a hidepid=2
 * /proc reclaims nothing live; the clients counter follows the table.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "l1arena_test.h"
#include "nsutil.h"
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
	l1t_gc_dead(a, 1, &g);
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
	l1t_gc_dead(a, 1, &g);
	ck_assert_uint_eq(g.objects_reclaimed, 9);
	ck_assert_uint_eq(g.bytes_reclaimed, 9 * 65536);
	ck_assert_uint_eq(g.holds_dropped, 1);
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


/* ---- namespaces ---------------------------------------------------------- */

struct ns_gc {
	const char *path;
	int out[2];
	int drop_to_nobody;             /* 1: setuid(65534) and check hidepid */
	pid_t hidden;                   /* a pid that /proc must hide */
};

/* Runs gc in another namespace and reports the result. */
static int ns_gc_main(void *arg)
{
	struct ns_gc *t = arg;
	struct l1_arena *b;
	struct l1_gc_result g;
	char proc[64];
	close(t->out[0]);
	if (l1_arena_open(t->path, NULL, &b))
		return 20;
	if (t->drop_to_nobody) {
		if (setgid(65534) || setuid(65534))
			return 21;
		snprintf(proc, sizeof proc, "/proc/%d/stat", (int)t->hidden);
		if (access(proc, F_OK) == 0)
			return 22;      /* hidepid did not hide it: the test proves nothing */
	}
	if (l1_arena_gc(b, &g))
		return 23;
	if (write(t->out[1], &g, sizeof g) != sizeof g)
		return 24;
	l1_arena_close(b);
	_exit(0);
}

static int gc_elsewhere(const char *path, int flags, const char *opts, int nobody, pid_t hidden,
			struct l1_gc_result *g, char *why, size_t len)
{
	struct ns_gc t = { path, { -1, -1 }, nobody, hidden };
	ck_assert_int_eq(pipe(t.out), 0);
	pid_t k = l1t_ns_spawn(flags, opts, ns_gc_main, &t, why, len);
	close(t.out[1]);
	if (k < 0) {
		close(t.out[0]);
		return -1;
	}
	ssize_t n = read(t.out[0], g, sizeof *g);
	close(t.out[0]);
	int st = l1t_wait(k);
	ck_assert_msg(st == 0 && n == sizeof *g, "gc in another namespace: status %d", st);
	return 0;
}

START_TEST(pid_namespace_writer_survives_gc)
{
	char why[256];
	struct l1_arena *a = l1t_create("nsw", 16 * MiB);
	const char *path = l1_arena_path(a);
	struct l1_obj sh, f, rest[32];
	ck_assert_int_eq(l1_alloc_bytes(a, 65536, 1, &sh), 0);
	l1t_fill(sh.ptr, sh.size, 11);
	ck_assert_int_eq(l1_publish(a, sh.id, "shared"), 0);
	struct l1t_ns_writer w = { .path = path, .held_key = "shared", .held_seed = 11,
				   .own_seed = 21 };
	pid_t k = l1t_ns_writer_start(&w, why, sizeof why);
	if (k < 0) {
		printf("SKIP pid_namespace_writer_survives_gc: %s\n", why);
		l1t_destroy(a);
		return;
	}
	/* gc from the host: the writer is PID 1 of its namespace, which /proc
	 * here says is init, with another start time */
	struct l1_gc_result g;
	ck_assert_int_eq(l1_arena_gc(a, &g), 0);
	ck_assert_uint_eq(g.objects_reclaimed, 0);
	ck_assert_uint_eq(g.holds_dropped, 0);
	ck_assert_uint_eq(g.clients_dropped, 0);
	/* the test frees "shared": it stays held (doomed), never reused */
	ck_assert_int_eq(l1_lookup(a, "shared", &f), 0);
	ck_assert_int_eq(l1_free(a, &f, 1), 0);
	/* gc from a third PID namespace with its own /proc */
	ck_assert_int_eq(gc_elsewhere(path, L1T_NS_PID | L1T_NS_MOUNT_PROC, NULL, 0, 0, &g, why,
				      sizeof why), 0);
	ck_assert_uint_eq(g.objects_reclaimed, 0);
	ck_assert_uint_eq(g.holds_dropped, 0);
	ck_assert_uint_eq(g.clients_dropped, 0);
	struct l1_client_info ci[8];
	int n = l1_arena_clients(a, ci, 8);
	ck_assert_int_eq(n, 2);
	for (int i = 0; i < n; i++)
		ck_assert_msg(ci[i].alive, "client %d (pid %d) listed as dead", i, ci[i].pid);
	/* the rest of the pool to another tenant: none of it is theirs */
	int got = 0;
	while (got < 32 && l1_alloc_bytes(a, 65536, 1, &rest[got]) == 0)
		l1t_fill(rest[got].ptr, rest[got].size, 31), got++;
	ck_assert_int_gt(got, 0);
	for (int i = 0; i < got; i++)
		ck_assert(rest[i].offset != sh.offset);
	/* now it checks its bytes and dies attached */
	ck_assert_int_eq(l1t_ns_writer_finish(&w, k), 0);
	l1t_gc_dead(a, 1, &g);
	ck_assert_uint_eq(g.objects_reclaimed, 1);
	ck_assert_uint_eq(g.bytes_reclaimed, 65536);
	ck_assert_uint_eq(g.holds_dropped, 1);
	ck_assert_int_eq(l1_free(a, rest, (uint32_t)got), 0);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.used_bytes, 0);
	ck_assert_uint_eq(u.clients, 1);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

/* gc by user nobody under a private /proc mounted hidepid=2 (it sees no
 * other user's processes): it must reclaim nothing that lives. */
START_TEST(hidepid_gc_reclaims_nothing_live)
{
	char why[256];
	struct l1_arena *a = l1t_create("hide", 16 * MiB);
	const char *path = l1_arena_path(a);
	struct l1_obj mine, sh;
	ck_assert_int_eq(l1_alloc_bytes(a, 65536, 1, &mine), 0);
	l1t_fill(mine.ptr, mine.size, 5);
	ck_assert_int_eq(l1_alloc_bytes(a, 65536, 1, &sh), 0);
	l1t_fill(sh.ptr, sh.size, 11);
	ck_assert_int_eq(l1_publish(a, sh.id, "shared"), 0);
	ck_assert_int_eq(l1_hold(a, sh.id, NULL), 0);
	if (getuid() != 0) {
		printf("SKIP hidepid_gc_reclaims_nothing_live: needs root to mount /proc\n");
		l1t_destroy(a);
		return;
	}
	struct l1_gc_result g;
	if (gc_elsewhere(path, L1T_NS_MOUNT_PROC, "hidepid=2", 1, getpid(), &g, why,
			 sizeof why) < 0) {
		printf("SKIP hidepid_gc_reclaims_nothing_live: %s\n", why);
		l1t_destroy(a);
		return;
	}
	ck_assert_uint_eq(g.objects_reclaimed, 0);
	ck_assert_uint_eq(g.holds_dropped, 0);
	ck_assert_uint_eq(g.clients_dropped, 0);
	ck_assert_uint_eq(g.dirty_requeued, 0);
	ck_assert(l1t_check(mine.ptr, mine.size, 5));
	ck_assert_int_eq(l1_release(a, sh.id), 0);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.clients, 1);
	ck_assert_uint_eq(u.objects[L1_STATE_ALLOCATED], 1);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

/* Clients come and go, die attached, and gc runs from several processes at
 * once: the counter is the table's, never below it, never wrapped. */
START_TEST(clients_counter_follows_table)
{
	struct l1_arena *a = l1t_create("ncl", 16 * MiB);
	const char *path = l1_arena_path(a);
	enum { N = 6 };
	pid_t kids[N];
	for (int k = 0; k < N; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			struct l1_arena *b = attach_or_die(path);
			for (int i = 0; i < 50; i++) {
				struct l1_gc_result g;
				if (l1_arena_gc(b, &g))
					_exit(1);
				struct l1_usage u;
				l1_arena_usage(b, &u);
				if (u.clients == 0 || u.clients > 64)
					_exit(2);
			}
			if (k & 1)
				l1_arena_close(b);
			_exit(0);       /* the others die attached */
		}
	}
	for (int k = 0; k < N; k++)
		ck_assert_int_eq(l1t_wait(kids[k]), 0);
	/* the dead ones' locks may trail waitpid (l1t_gc_dead): gc until they
	 * are gone (some other kid's gc may have dropped some already) */
	struct l1_usage u;
	for (int i = 0; i < 2000; i++) {
		ck_assert_int_eq(l1_arena_gc(a, NULL), 0);
		l1_arena_usage(a, &u);
		if (u.clients == 1)
			break;
		usleep(10000);
	}
	ck_assert_uint_eq(u.clients, 1);
	struct l1_client_info ci[4];
	ck_assert_int_eq(l1_arena_clients(a, ci, 4), 1);
	ck_assert_int_eq(ci[0].pid, getpid());
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

/* A handle inherited across fork does not keep its parent alive: the
 * parent dies attached while the child (which only inherited the handle)
 * lives on, and gc takes the parent's objects. */
START_TEST(fork_child_is_not_the_owner)
{
	struct l1_arena *a = l1t_create("forkown", 16 * MiB);
	const char *path = l1_arena_path(a);
	int p[2], q[2];
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(pipe(q), 0);
	pid_t parent = fork();
	if (parent == 0) {
		struct l1_arena *b = attach_or_die(path);
		struct l1_obj o[2];
		if (l1_alloc_bytes(b, 65536, 2, o))
			_exit(1);
		pid_t child = fork();   /* inherits b, lives on */
		if (child == 0) {
			char c;
			close(q[1]);
			(void)!read(q[0], &c, 1);
			_exit(0);
		}
		(void)!write(p[1], &child, sizeof child);
		_exit(0);               /* the owner dies attached */
	}
	close(p[1]);
	close(q[0]);
	pid_t child;
	ck_assert_int_eq(read(p[0], &child, sizeof child), sizeof child);
	ck_assert_int_eq(l1t_wait(parent), 0);
	struct l1_gc_result sum;
	l1t_gc_dead(a, 1, &sum);
	ck_assert_uint_eq(sum.objects_reclaimed, 2);
	ck_assert_int_eq(write(q[1], "x", 1), 1);
	close(q[1]);
	close(p[0]);
	for (int i = 0; i < 2000 && kill(child, 0) == 0; i++)
		usleep(1000);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

/* Two handles in one process are two clients (each its own open of the
 * file, its own lock): gc from one leaves the other's hold alone, and the
 * other's close drops its holds, retiring what only they kept. */
START_TEST(two_handles_two_clients)
{
	struct l1_arena *a = l1t_create("twoh", 16 * MiB), *b;
	struct l1_obj o, h;
	struct l1_gc_result g;
	struct l1_usage u;
	ck_assert_int_eq(l1_arena_open(l1_arena_path(a), NULL, &b), 0);
	ck_assert_int_eq(l1_alloc_bytes(a, 65536, 1, &o), 0);
	ck_assert_int_eq(l1_publish(a, o.id, "both"), 0);
	ck_assert_int_eq(l1_hold_key(b, "both", &h), 0);
	ck_assert_int_eq(l1_alloc_bytes(b, 65536, 1, &h), 0);     /* b's own, unpublished */
	ck_assert_int_eq(l1_arena_gc(a, &g), 0);
	ck_assert_uint_eq(g.objects_reclaimed, 0);
	ck_assert_uint_eq(g.holds_dropped, 0);
	ck_assert_uint_eq(g.clients_dropped, 0);
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.clients, 2);
	ck_assert_int_eq(l1_free(a, &o, 1), 0);
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.objects[L1_STATE_DOOMED], 1);
	l1_arena_close(b);      /* its hold goes, and with it the doomed object */
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.holds, 0);
	ck_assert_uint_eq(u.objects[L1_STATE_DOOMED], 0);
	ck_assert_uint_eq(u.clients, 1);
	ck_assert_int_eq(l1_arena_gc(a, &g), 0);
	ck_assert_uint_eq(g.objects_reclaimed, 1);              /* b's unpublished one */
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.used_bytes, 0);
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
	t = tcase_create("liveness");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, pid_namespace_writer_survives_gc);
	tcase_add_test(t, hidepid_gc_reclaims_nothing_live);
	tcase_add_test(t, clients_counter_follows_table);
	tcase_add_test(t, fork_child_is_not_the_owner);
	tcase_add_test(t, two_handles_two_clients);
	suite_add_tcase(s, t);
	return l1t_run_suite(s);
}
