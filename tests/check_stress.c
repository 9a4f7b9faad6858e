/*
 * check_stress.c - two processes, each with several threads, hammer one pool
 * for L1_STRESS_SECONDS (default 30; L1_STRESS_THREADS threads per process,
 * default 4): allocate in batches, write, publish under a key, look up, get,
 * hold and read other threads' (and the other process's) objects by key,
 * release, free in batches.  One thread per process works through its own
 * handle, the others share one.  Every object's bytes are checked before it
 * is freed (nobody else wrote into it) and whenever a hold is taken (nobody
 * zeroed or reused it under the hold).  While it runs the test process runs
 * memcheck every second; at the end everything is freed, memcheck must be
 * clean and the pool empty.  The summary line gives the operations done.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MiB (1ull << 20)
#define NPROC 2
#define MAXT 16
#define RING 64                         /* recently published seeds per thread */
#define KEEP 64                         /* objects a thread keeps at most */

enum { OP_ALLOC, OP_FREE, OP_PUBLISH, OP_LOOKUP, OP_GET, OP_HOLD, OP_RELEASE, OP_MISS, OP_N };
static const char *op_names[OP_N] = {
	"alloc", "free", "publish", "lookup", "get", "hold", "release", "key gone",
};

struct shared {
	_Atomic uint64_t next_seed;
	_Atomic uint64_t ops[OP_N];
	_Atomic uint64_t refused;
	_Atomic int failed;
	char err[512];
	_Atomic uint64_t ring[NPROC][MAXT][RING];       /* seeds: keys to read */
};

static struct shared *S;

struct mine {
	struct l1_obj o;
	uint64_t seed;
	int published;
};

struct thr {
	struct l1_arena *a;
	uint32_t proc, idx, nthreads;
	uint64_t deadline_ns;
	unsigned rs;
	struct mine keep[KEEP];
	uint32_t n;
	uint64_t ops[OP_N];
};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(struct thr *t, uint64_t n)
{
	return n ? (uint64_t)rand_r(&t->rs) % n : 0;
}

static void key_of(uint64_t seed, char *key, size_t len)
{
	snprintf(key, len, "s-%016llx", (unsigned long long)seed);
}

static void stress_fail(const char *what, uint64_t seed)
{
	if (atomic_exchange(&S->failed, 1) == 0)
		snprintf(S->err, sizeof S->err, "%s (object s-%016llx): %s", what,
			 (unsigned long long)seed, l1_last_error());
}

static void free_some(struct thr *t, uint32_t n)
{
	struct l1_obj batch[8];
	if (n > t->n)
		n = t->n;
	if (n > 8)
		n = 8;
	for (uint32_t i = 0; i < n; i++) {
		struct mine *m = &t->keep[t->n - 1 - i];
		if (!l1t_check(m->o.ptr, m->o.size, m->seed))
			stress_fail("an object's bytes changed before its owner freed it", m->seed);
		batch[i] = m->o;
	}
	if (n && l1_free(t->a, batch, n))
		stress_fail("free of own objects", t->keep[t->n - 1].seed);
	t->n -= n;
	t->ops[OP_FREE] += n;
}

/* Reads a recently published object of any thread of either process. */
static void read_other(struct thr *t, int hold)
{
	char key[32];
	struct l1_obj o;
	uint64_t seed = atomic_load(&S->ring[rnd(t, NPROC)][rnd(t, t->nthreads)][rnd(t, RING)]);
	if (!seed)
		return;
	key_of(seed, key, sizeof key);
	int r = hold ? l1_hold_key(t->a, key, &o) : l1_lookup(t->a, key, &o);
	if (r == -ENOENT) {                     /* freed since */
		t->ops[OP_MISS]++;
		return;
	}
	if (r) {
		stress_fail(hold ? "hold by key" : "lookup", seed);
		return;
	}
	if (!hold) {
		t->ops[OP_LOOKUP]++;
		return;
	}
	t->ops[OP_HOLD]++;
	if (!l1t_check(o.ptr, o.size, seed))
		stress_fail("an object's bytes changed under a hold", seed);
	if (l1_release(t->a, o.id))
		stress_fail("release", seed);
	t->ops[OP_RELEASE]++;
}

static void *thread_main(void *arg)
{
	struct thr *t = arg;
	uint32_t ringpos = 0;
	while (!atomic_load(&S->failed) && mono_ns() < t->deadline_ns) {
		for (int k = 0; k < 64; k++) {
			uint64_t op = rnd(t, 100);
			if (op < 30) {
				struct l1_obj o[8];
				uint32_t n = 1 + (uint32_t)rnd(t, 8);
				if (t->n + n > KEEP)
					free_some(t, n);
				int r = l1_alloc_bytes(t->a, 4096 * (1 + rnd(t, 8)), n, o);
				if (r == -ENOMEM || r == -ENOSPC) {
					atomic_fetch_add(&S->refused, 1);
					free_some(t, 8);
					continue;
				}
				if (r) {
					stress_fail("alloc", 0);
					break;
				}
				for (uint32_t i = 0; i < n; i++) {
					struct mine *m = &t->keep[t->n++];
					m->o = o[i];
					m->seed = atomic_fetch_add(&S->next_seed, 1);
					m->published = 0;
					l1t_fill(m->o.ptr, m->o.size, m->seed);
				}
				t->ops[OP_ALLOC] += n;
			} else if (op < 50) {
				struct mine *m = t->n ? &t->keep[rnd(t, t->n)] : NULL;
				char key[32];
				if (!m || m->published)
					continue;
				key_of(m->seed, key, sizeof key);
				if (l1_publish(t->a, m->o.id, key)) {
					stress_fail("publish", m->seed);
					break;
				}
				m->published = 1;
				atomic_store(&S->ring[t->proc][t->idx][ringpos++ % RING], m->seed);
				t->ops[OP_PUBLISH]++;
			} else if (op < 68) {
				free_some(t, 1 + (uint32_t)rnd(t, 8));
			} else if (op < 76) {
				read_other(t, 0);
			} else if (op < 92) {
				read_other(t, 1);
			} else if (t->n) {
				struct mine *m = &t->keep[rnd(t, t->n)];
				struct l1_obj o;
				struct l1_obj_info info;
				if (l1_get(t->a, m->o.id, &o) || o.ptr != m->o.ptr ||
				    l1_obj_info(t->a, m->o.id, &info) ||
				    info.state != (m->published ? L1_STATE_PUBLISHED
								: L1_STATE_ALLOCATED)) {
					stress_fail("get of an own object", m->seed);
					break;
				}
				t->ops[OP_GET]++;
			}
		}
	}
	while (t->n)
		free_some(t, 8);
	return NULL;
}

/* Forked before the test process starts any thread (its pool's zeroing
 * engine is one), as ThreadSanitizer requires; it is told the pool's path
 * through the pipe once the pool exists. */
static void proc_main(int go, uint32_t proc, uint32_t nthreads, uint64_t secs)
{
	struct l1_arena *shared, *own;
	pthread_t th[MAXT];
	static struct thr t[MAXT];
	char path[512];
	pid_t parent = getppid();
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	ssize_t n = read(go, path, sizeof path - 1);
	if (n <= 0)
		_exit(1);
	path[n] = 0;
	if (l1_arena_open(path, NULL, &shared) || l1_arena_open(path, NULL, &own)) {
		stress_fail("open", 0);
		_exit(1);
	}
	uint64_t deadline = mono_ns() + secs * 1000000000ull;
	for (uint32_t i = 0; i < nthreads; i++) {
		t[i].a = i == 0 ? own : shared;
		t[i].proc = proc;
		t[i].idx = i;
		t[i].nthreads = nthreads;
		t[i].deadline_ns = deadline;
		t[i].rs = (unsigned)(getpid() * 7919 + i);
		if (pthread_create(&th[i], NULL, thread_main, &t[i])) {
			stress_fail("pthread_create", 0);
			_exit(1);
		}
	}
	for (uint32_t i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		for (int k = 0; k < OP_N; k++)
			atomic_fetch_add(&S->ops[k], t[i].ops[k]);
	}
	l1_arena_close(own);
	l1_arena_close(shared);
	_exit(atomic_load(&S->failed) ? 1 : 0);
}

static uint32_t env_u32(const char *name, uint32_t def, uint32_t lo, uint32_t hi)
{
	const char *v = getenv(name);
	long n = v && *v ? strtol(v, NULL, 10) : (long)def;
	return n < (long)lo ? lo : n > (long)hi ? hi : (uint32_t)n;
}

START_TEST(two_processes_many_threads)
{
	uint32_t secs = env_u32("L1_STRESS_SECONDS", 30, 1, 86400);
	uint32_t nthreads = env_u32("L1_STRESS_THREADS", 4, 1, MAXT);
	struct l1_config c;
	struct l1_arena *a;
	pid_t kids[NPROC];
	char path[512];
	S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert(S != MAP_FAILED);
	memset(S, 0, sizeof *S);
	atomic_store(&S->next_seed, 1);
	int go[NPROC][2];
	for (uint32_t p = 0; p < NPROC; p++) {
		ck_assert_int_eq(pipe(go[p]), 0);
		kids[p] = fork();
		ck_assert_int_ge(kids[p], 0);
		if (kids[p] == 0) {
			close(go[p][1]);
			proc_main(go[p][0], p, nthreads, secs);
		}
		close(go[p][0]);
	}
	l1t_config(&c, "stress", 64 * MiB);
	c.max_objects = 8192;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	snprintf(path, sizeof path, "%s", l1_arena_path(a));
	for (uint32_t p = 0; p < NPROC; p++) {
		ck_assert_int_eq(write(go[p][1], path, strlen(path)), (ssize_t)strlen(path));
		close(go[p][1]);
	}
	/* while they run: the shared state is consistent at every lock */
	uint64_t checks = 0, end = mono_ns() + (uint64_t)secs * 1000000000ull;
	while (mono_ns() < end && !atomic_load(&S->failed)) {
		sleep(1);
		char rep[4096];
		int n = l1_arena_memcheck(a, 0, rep, sizeof rep);
		ck_assert_msg(n == 0, "memcheck under load: %d problem(s): %s", n, rep);
		checks++;
	}
	for (uint32_t p = 0; p < NPROC; p++) {
		int st = l1t_wait(kids[p]);
		ck_assert_msg(st == 0, "process %u ended with %d: %s", p, st, S->err);
	}
	ck_assert_msg(!atomic_load(&S->failed), "%s", S->err);
	ck_assert_int_eq(l1_arena_flush(a, 30000), 0);
	l1t_memcheck_clean(a);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.used_bytes, 0);
	ck_assert_uint_eq(u.dirty_bytes, 0);
	ck_assert_uint_eq(u.holds, 0);
	ck_assert_uint_eq(u.clients, 1);
	ck_assert_uint_eq(u.objects[L1_STATE_FREE], u.max_objects);
	uint64_t total = 0;
	char line[512];
	size_t at = 0;
	for (int k = 0; k < OP_N; k++) {
		uint64_t n = atomic_load(&S->ops[k]);
		total += n;
		at += (size_t)snprintf(line + at, sizeof line - at, "%s%s %llu", k ? ", " : "",
				       op_names[k], (unsigned long long)n);
	}
	printf("stress: %llu operations in %u s by %d processes x %u threads (%s; %llu "
	       "allocations refused for space), %llu memchecks under load clean, pool empty "
	       "and clean at the end\n", (unsigned long long)total, secs, NPROC, nthreads, line,
	       (unsigned long long)atomic_load(&S->refused), (unsigned long long)checks);
	fflush(stdout);
	ck_assert_uint_gt(atomic_load(&S->ops[OP_HOLD]), 0);
	ck_assert_uint_gt(atomic_load(&S->ops[OP_PUBLISH]), 0);
	l1t_destroy(a);
	munmap(S, sizeof *S);
}
END_TEST

int main(void)
{
	uint32_t secs = env_u32("L1_STRESS_SECONDS", 30, 1, 86400);
	Suite *s = suite_create("stress");
	TCase *t = tcase_create("stress");
	tcase_set_timeout(t, 120 + 2 * secs);   /* a hang guard, not a measure */
	tcase_add_test(t, two_processes_many_threads);
	suite_add_tcase(s, t);
	return l1t_run_suite(s);
}
