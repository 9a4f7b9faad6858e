/*
 * bench_sustain.c - scenario sustain: sustained allocate+free with
 * zero-on-free on, beside glibc aligned_alloc(4096) + memset of the same
 * bytes + free (what a caller who must hand out zeroed memory would do
 * without the pool), and beside DPDK's rte_malloc/rte_free, which zeroes at
 * free: the like-for-like peer (dpdk.c; skipped, with a note, where
 * librte_eal.so.23 is missing).
 * Three traces: batches of 64 x 16 KiB allocated then freed; mixed KV
 * sizes (16 KiB..2 MiB) with 64 objects live, each step freeing a random one
 * and allocating a random size; and 16 384 objects of 16 KiB live, each
 * step freeing 64 of them at random and allocating 64 (the filling of the
 * 16 384 is not timed).  Each runs with the whole process (engine
 * thread and io-wq workers included: they inherit it) bound to one CPU, and
 * again on two; the time ends when everything freed is zeroed
 * (l1_arena_flush), so it is the sustained cost, not a burst.  Goals: <=
 * 1.5x glibc on one CPU, <= 1.0x on two, and <= DPDK on both.
 */
#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "dpdk.h"

#define SCEN "sustain"
#define BATCH 64u
#define LIVE 64u                        /* mixed sizes: objects live */
#define LIVE_BIG 16384u                 /* 16 KiB, random frees: objects live */

enum { T_BATCH, T_MIXED, T_LIVE, NTRACES };

/* 16 KiB blocks, a layer of a 256-token chunk of small and 7B models, ... */
static const uint64_t kv_sizes[] = { 16384, 65536, 196608, 262144, 1048576, 1441792,
				     2097152 };
#define NSIZES (sizeof kv_sizes / sizeof kv_sizes[0])

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Trace T_LIVE's step: ord[0..BATCH) become BATCH distinct random picks
 * of its LIVE_BIG objects (a partial shuffle), the ones freed this step. */
static void pick_batch(uint32_t *ord, uint64_t *seed)
{
	for (uint32_t j = 0; j < BATCH; j++) {
		uint32_t r = j + (uint32_t)(rnd(seed) % (LIVE_BIG - j)), x = ord[j];
		ord[j] = ord[r];
		ord[r] = x;
	}
}

static uint32_t *ord_new(void)
{
	uint32_t *ord = malloc(LIVE_BIG * sizeof *ord);
	for (uint32_t i = 0; ord && i < LIVE_BIG; i++)
		ord[i] = i;
	return ord;
}

/* T_LIVE on the pool: LIVE_BIG objects of 16 KiB (not timed), then steps
 * of BATCH random frees and BATCH allocates; ns per object, or -1. */
static double run_pool_live(struct l1_arena *a, uint64_t n)
{
	struct l1_obj *o = malloc(LIVE_BIG * sizeof *o), f[BATCH];
	uint32_t *ord = ord_new();
	uint64_t seed = 0x5eed;
	double ns = -1;
	if (!o || !ord)
		goto out;
	for (uint32_t i = 0; i < LIVE_BIG; i += BATCH)
		if (l1_alloc_bytes(a, 16384, BATCH, &o[i]))
			goto out;
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < n / BATCH; i++) {
		pick_batch(ord, &seed);
		for (uint32_t j = 0; j < BATCH; j++)
			f[j] = o[ord[j]];
		if (l1_free(a, f, BATCH) || l1_alloc_bytes(a, 16384, BATCH, f))
			goto out;
		for (uint32_t j = 0; j < BATCH; j++)
			o[ord[j]] = f[j];
	}
	if (l1_arena_flush(a, 60000))
		goto out;
	ns = (double)(bench_now_ns() - t0) / (double)(n / BATCH * BATCH);
	for (uint32_t i = 0; i < LIVE_BIG; i += BATCH)
		if (l1_free(a, &o[i], BATCH))
			ns = -1;
out:
	free(o);
	free(ord);
	return ns;
}

/* ns per object, or -1. */
static double run_pool(struct l1_arena *a, int trace, uint64_t n)
{
	struct l1_obj o[BATCH];
	uint64_t seed = 0x5eed, t0 = bench_now_ns();
	if (trace == T_LIVE)
		return run_pool_live(a, n);
	if (trace == T_BATCH) {
		for (uint64_t i = 0; i < n / BATCH; i++)
			if (l1_alloc_bytes(a, 16384, BATCH, o) || l1_free(a, o, BATCH))
				return -1;
	} else {
		for (uint32_t i = 0; i < LIVE; i++)
			if (l1_alloc_bytes(a, kv_sizes[rnd(&seed) % NSIZES], 1, &o[i]))
				return -1;
		for (uint64_t i = 0; i < n; i++) {
			uint32_t k = (uint32_t)(rnd(&seed) % LIVE);
			if (l1_free(a, &o[k], 1) ||
			    l1_alloc_bytes(a, kv_sizes[rnd(&seed) % NSIZES], 1, &o[k]))
				return -1;
		}
		if (l1_free(a, o, LIVE))
			return -1;
	}
	if (l1_arena_flush(a, 60000))
		return -1;
	return (double)(bench_now_ns() - t0) / (double)n;
}

/* A heap for the baselines: blocks that read as zeroes, 4096-aligned. */
struct heap {
	void *(*alloc)(uint64_t size);
	void (*free)(void *p);
};

/* glibc: aligned_alloc + memset, what a caller who must hand out zeroed
 * memory does without the pool. */
static void *glibc_alloc(uint64_t size)
{
	void *p = aligned_alloc(4096, size);
	if (p)
		memset(p, 0, size);
	return p;
}

static const struct heap glibc_heap = { glibc_alloc, free };
static const struct heap dpdk_heap = { dpdk_alloc, dpdk_free };

/* T_LIVE on a heap, as run_pool_live. */
static double run_heap_live(const struct heap *hp, uint64_t n)
{
	void **p = calloc(LIVE_BIG, sizeof *p);
	uint32_t *ord = ord_new();
	uint64_t seed = 0x5eed;
	double ns = -1;
	if (!p || !ord)
		goto out;
	for (uint32_t i = 0; i < LIVE_BIG; i++)
		if (!(p[i] = hp->alloc(16384)))
			goto out;
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < n / BATCH; i++) {
		pick_batch(ord, &seed);
		for (uint32_t j = 0; j < BATCH; j++)
			hp->free(p[ord[j]]);
		for (uint32_t j = 0; j < BATCH; j++)
			if (!(p[ord[j]] = hp->alloc(16384)))
				goto out;
	}
	ns = (double)(bench_now_ns() - t0) / (double)(n / BATCH * BATCH);
out:
	for (uint32_t i = 0; p && i < LIVE_BIG; i++)
		if (p[i])
			hp->free(p[i]);
	free(p);
	free(ord);
	return ns;
}

/* The pool's traces on a heap: ns per object, or -1. */
static double run_heap(const struct heap *hp, int trace, uint64_t n)
{
	void *p[BATCH];
	uint64_t seed = 0x5eed, t0 = bench_now_ns();
	if (trace == T_LIVE)
		return run_heap_live(hp, n);
	if (trace == T_BATCH) {
		for (uint64_t i = 0; i < n / BATCH; i++) {
			for (uint32_t j = 0; j < BATCH; j++)
				if (!(p[j] = hp->alloc(16384)))
					return -1;
			for (uint32_t j = 0; j < BATCH; j++)
				hp->free(p[j]);
		}
	} else {
		for (uint32_t i = 0; i < LIVE; i++)
			if (!(p[i] = hp->alloc(kv_sizes[rnd(&seed) % NSIZES])))
				return -1;
		for (uint64_t i = 0; i < n; i++) {
			uint32_t k = (uint32_t)(rnd(&seed) % LIVE);
			hp->free(p[k]);
			if (!(p[k] = hp->alloc(kv_sizes[rnd(&seed) % NSIZES])))
				return -1;
		}
		for (uint32_t i = 0; i < LIVE; i++)
			hp->free(p[i]);
	}
	return (double)(bench_now_ns() - t0) / (double)n;
}

/* What the DPDK child sends back through its pipe (one write, < PIPE_BUF). */
struct dpdk_result {
	double ns[3];                   /* -1: not run */
	char why[200];
};

/* In a child bound like this process: DPDK's heap on the trace, a warm-up
 * and then 3 runs (out), after checking that rte_free zeroed a block.
 * 0, or -1 with a sentence in why. */
static int run_dpdk(int trace, uint64_t n, double out[3], char *why, size_t len)
{
	char prefix[64];
	int fd[2], had = dpdk_had_dir();
	snprintf(prefix, sizeof prefix, "l1bench-%d", (int)getpid());
	if (pipe(fd)) {
		snprintf(why, len, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, len, "fork: %s", strerror(errno));
		close(fd[0]);
		close(fd[1]);
		return -1;
	}
	if (pid == 0) {
		struct dpdk_result r = { { -1, -1, -1 }, "" };
		close(fd[0]);
		if (dpdk_start(prefix, r.why, sizeof r.why) == 0) {
			unsigned char *b = dpdk_alloc(65536);
			size_t dirty = 0;
			if (b) {
				memset(b, 0xa5, 65536);
				dpdk_free(b);   /* the middle stays DPDK's heap: readable */
				for (size_t i = 4096; i < 65536 - 4096; i++)
					dirty += b[i] != 0;
			}
			if (!b || dirty)
				snprintf(r.why, sizeof r.why, "rte_free left %zu of 56 KiB unzeroed: "
					 "not a like-for-like baseline", dirty);
			else if (run_heap(&dpdk_heap, trace, n) < 0)       /* warm-up */
				snprintf(r.why, sizeof r.why, "rte_malloc failed on the trace");
			else
				for (int k = 0; k < 3; k++)
					r.ns[k] = run_heap(&dpdk_heap, trace, n);
		}
		ssize_t w = write(fd[1], &r, sizeof r);
		_exit(w == (ssize_t)sizeof r ? 0 : 1);
	}
	close(fd[1]);
	struct dpdk_result r;
	ssize_t got = read(fd[0], &r, sizeof r);
	close(fd[0]);
	int st = 0;
	waitpid(pid, &st, 0);
	dpdk_cleanup(prefix, had);
	if (got != (ssize_t)sizeof r) {
		snprintf(why, len, "the DPDK child ended without a result (status %d)", st);
		return -1;
	}
	if (r.ns[0] < 0 || r.ns[1] < 0 || r.ns[2] < 0) {
		snprintf(why, len, "%s", r.why[0] ? r.why : "a DPDK run failed");
		return -1;
	}
	memcpy(out, r.ns, sizeof r.ns);
	return 0;
}

/* Binds the whole process to the first ncpu CPUs it may use; 0 or -1. */
static int bind_cpus(const cpu_set_t *all, int ncpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	for (int c = 0, k = 0; c < CPU_SETSIZE && k < ncpu; c++)
		if (CPU_ISSET(c, all)) {
			CPU_SET(c, &set);
			k++;
		}
	return CPU_COUNT(&set) == ncpu && sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : -1;
}

static double median3(double a, double b, double c)
{
	return a > b ? (b > c ? b : a > c ? c : a) : (a > c ? a : b > c ? c : b);
}

int bench_sustain(const struct bench_ctx *c)
{
	static const char *const trace[NTRACES] = { "16 KiB batches of 64", "mixed 16 KiB-2 MiB",
						    "16 384 live x 16 KiB, random frees" };
	static const char *const key[NTRACES] = { "batch", "mixed", "live" };
	const char *only = getenv("L1BENCH_SUSTAIN_ONLY");     /* one trace, by key */
	uint64_t n[NTRACES] = { c->quick ? 64000 : 256000, c->quick ? 2000 : 8000,
				c->quick ? 64000 : 256000 };
	/* T_LIVE: 256 MiB live, a record for each 16 KiB */
	static const uint64_t pool[NTRACES] = { 256ull << 20, 256ull << 20, 512ull << 20 };
	static const uint64_t objs[NTRACES] = { 0, 0, (512ull << 20) / 16384 };
	cpu_set_t all;
	int rc = 0, dpdk_said = 0, dpdk_ran = 0;
	if (c->iters)
		n[T_BATCH] = n[T_MIXED] = n[T_LIVE] = c->iters;
	if (sched_getaffinity(0, sizeof all, &all))
		return 1;
	/* no heap trimming between batches: measure malloc + memset, not munmap */
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TOP_PAD, 64 << 20);
	for (int ncpu = 1; ncpu <= 2; ncpu++) {
		if (bind_cpus(&all, ncpu)) {
			bench_note(c, SCEN, "cannot bind to %d CPU(s): skipped", ncpu);
			continue;
		}
		for (int m = 0; m < NTRACES; m++) {
			double ours[3], base[3];
			if (only && strcmp(only, key[m]))
				continue;
			for (int k = 0; k < 3; k++) {
				/* the engine starts here, on the CPUs bound now */
				struct l1_arena *a = bench_create_objs(c, SCEN, pool[m], 0, 1,
								       objs[m]);
				if (!a)
					return 1;
				ours[k] = run_pool(a, m, n[m]);
				bench_destroy(a);
				base[k] = run_heap(&glibc_heap, m, n[m]);
				if (ours[k] < 0 || base[k] < 0) {
					bench_note(c, SCEN, "%s failed: %s", trace[m], l1_last_error());
					rc = 1;
					goto out;
				}
			}
			double o = median3(ours[0], ours[1], ours[2]);
			double b = median3(base[0], base[1], base[2]);
			double goal = ncpu == 1 ? 1.5 : 1.0;
			char metric[96], gs[32];
			snprintf(metric, sizeof metric, "%s, %d CPU%s, zeroing on", trace[m], ncpu,
				 ncpu > 1 ? "s" : "");
			snprintf(gs, sizeof gs, "<= %.1fx baseline", goal);
			bench_report(c, SCEN, metric, o, "ns/obj", "aligned_alloc+memset+free", b,
				     gs, o <= goal * b);
			double d[3];
			char why[256];
			if (run_dpdk(m, n[m], d, why, sizeof why)) {
				if (!dpdk_said++)
					bench_note(c, SCEN, "no DPDK baseline: %s", why);
				continue;
			}
			double dm = median3(d[0], d[1], d[2]);
			dpdk_ran = 1;
			snprintf(metric, sizeof metric, "%s, %d CPU%s, beside DPDK", trace[m], ncpu,
				 ncpu > 1 ? "s" : "");
			bench_report(c, SCEN, metric, o, "ns/obj", "rte_malloc+rte_free (zeroes)", dm,
				     "<= DPDK", o <= dm);
		}
	}
	bench_note(c, SCEN, "medians of 3; the pool's time ends when all it freed is zeroed%s",
		   dpdk_ran ? "; DPDK: librte_eal 22.11 in a child process, --no-huge (its heap in "
			      "anonymous memory), 4096-aligned blocks, rte_free zeroing each block "
			      "(checked first)" : "");
out:
	sched_setaffinity(0, sizeof all, &all);
	return rc;
}
