/*
 * bench_contend.c - scenario contend: the worst case of allocate+free when
 * the pool is short of memory and many threads fight for it.  2 processes x
 * 8 threads on one 64 MiB pool, each thread allocating a batch of 4 objects
 * of 1 MiB, touching them and freeing them, for a fixed time: together they
 * want the whole pool, so allocations wait for each other's frees and, with
 * zero-on-free, for the zeroing.  Reports the worst call, p99 and the calls
 * over 100 ms and 1 s, with zeroing on, beside the same run with zeroing off
 * (the baseline: the same fight, without zeroing).  Latencies gather in a
 * shared anonymous mapping (atomics), one histogram for both processes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define PROCS 2
#define THREADS 8
#define BATCH 4
#define OBJ (1ull << 20)
#define POOL (64ull << 20)
#define NBUCKET 40                      /* log2 buckets of nanoseconds */

struct shared {
	_Atomic uint64_t calls, fails, over_100ms, over_1s, worst_ns;
	_Atomic uint64_t hist[NBUCKET];
	_Atomic int go;
};

struct worker {
	struct l1_arena *a;
	struct shared *s;
	uint64_t end_ns;
};

static void record(struct shared *s, uint64_t ns, int ok)
{
	atomic_fetch_add(&s->calls, 1);
	if (!ok)
		atomic_fetch_add(&s->fails, 1);
	if (ns > 100000000ull)
		atomic_fetch_add(&s->over_100ms, 1);
	if (ns > 1000000000ull)
		atomic_fetch_add(&s->over_1s, 1);
	uint64_t w = atomic_load(&s->worst_ns);
	while (ns > w && !atomic_compare_exchange_weak(&s->worst_ns, &w, ns))
		;
	int b = 0;
	while (b < NBUCKET - 1 && (1ull << (b + 1)) <= ns)
		b++;
	atomic_fetch_add(&s->hist[b], 1);
}

static void *thread_main(void *p)
{
	struct worker *w = p;
	struct l1_obj o[BATCH];
	while (bench_now_ns() < w->end_ns) {
		uint64_t t0 = bench_now_ns();
		int ok = l1_alloc_bytes(w->a, OBJ, BATCH, o) == 0;
		if (ok) {
			for (int i = 0; i < BATCH; i++)
				memset(o[i].ptr, 0x5a, 4096);
			ok = l1_free(w->a, o, BATCH) == 0;
		}
		record(w->s, bench_now_ns() - t0, ok);
	}
	return NULL;
}

static void process_main(const char *path, struct shared *s, uint64_t secs)
{
	struct l1_arena *a;
	struct l1_open_opts oo;
	l1_open_opts_init(&oo);
	oo.pin = L1_PIN_OFF;
	if (l1_arena_open(path, &oo, &a))
		_exit(1);
	while (!atomic_load(&s->go))
		usleep(1000);
	struct worker w = { a, s, bench_now_ns() + secs * 1000000000ull };
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, thread_main, &w);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	l1_arena_close(a);
	_exit(0);
}

static uint64_t p99_ns(const struct shared *s)
{
	uint64_t n = atomic_load(&s->calls), seen = 0;
	for (int b = 0; b < NBUCKET; b++) {
		seen += atomic_load(&s->hist[b]);
		if (seen * 100 >= n * 99)
			return 1ull << (b + 1);         /* the bucket's upper bound */
	}
	return 0;
}

/* One run; 0, or -1 if it could not run. */
static int run(const struct bench_ctx *c, int zero, uint64_t secs, struct shared *s)
{
	struct l1_arena *a = bench_create(c, zero ? "contend-z" : "contend", POOL, 0, zero);
	if (!a)
		return -1;
	memset((void *)s, 0, sizeof *s);
	pid_t kids[PROCS];
	for (int k = 0; k < PROCS; k++)
		if ((kids[k] = fork()) == 0)
			process_main(l1_arena_path(a), s, secs);
	usleep(200000);
	atomic_store(&s->go, 1);
	int ok = 1;
	for (int k = 0; k < PROCS; k++) {
		int st;
		waitpid(kids[k], &st, 0);
		ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	bench_destroy(a);
	return ok ? 0 : -1;
}

int bench_contend(const struct bench_ctx *c)
{
	uint64_t secs = c->quick ? 2 : 10;
	struct shared *on = mmap(NULL, 2 * sizeof *on, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (on == MAP_FAILED)
		return 1;
	struct shared *off = on + 1;
	if (run(c, 0, secs, off) || run(c, 1, secs, on)) {
		bench_note(c, "contend", "a worker failed");
		munmap(on, 2 * sizeof *on);
		return 1;
	}
	bench_note(c, "contend", "%d processes x %d threads, %d x %llu MiB per call, %llu MiB "
		   "pool, %llu s each: %llu calls with zeroing, %llu without",
		   PROCS, THREADS, BATCH, (unsigned long long)(OBJ >> 20),
		   (unsigned long long)(POOL >> 20), (unsigned long long)secs,
		   (unsigned long long)on->calls, (unsigned long long)off->calls);
	bench_report(c, "contend", "worst alloc+free, zeroing on", (double)on->worst_ns / 1e6,
		     "ms", "zeroing off", (double)off->worst_ns / 1e6, NULL, -1);
	bench_report(c, "contend", "p99 alloc+free (bucket bound)", (double)p99_ns(on) / 1e6,
		     "ms", "zeroing off", (double)p99_ns(off) / 1e6, NULL, -1);
	bench_report(c, "contend", "calls over 100 ms", (double)on->over_100ms, "",
		     "zeroing off", (double)off->over_100ms, NULL, -1);
	bench_report(c, "contend", "calls over 1 s", (double)on->over_1s, "",
		     "zeroing off", (double)off->over_1s, "0", on->over_1s == 0);
	bench_report(c, "contend", "failed calls (no room after the wait)", (double)on->fails,
		     "", "zeroing off", (double)off->fails, "0", on->fails == 0);
	bench_report(c, "contend", "alloc+free calls per second", (double)on->calls / secs,
		     "/s", "zeroing off", (double)off->calls / secs, NULL, -1);
	munmap(on, 2 * sizeof *on);
	return 0;
}
