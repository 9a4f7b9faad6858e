/*
 * bench_sustain.c - scenario sustain: sustained allocate+free with
 * zero-on-free on, beside glibc aligned_alloc(4096) + memset of the same
 * bytes + free (what a caller who must hand out zeroed memory would do
 * without the pool; DPDK's rte_malloc/rte_free, which zeroes at free, is not
 * packaged as a library here (see the README), so this is the baseline).
 * Two traces: batches of 64 x 16 KiB allocated then freed; and mixed KV
 * sizes (16 KiB..2 MiB) with 64 objects live, each step freeing a random one
 * and allocating a random size.  Each runs with the whole process (engine
 * thread and io-wq workers included: they inherit it) bound to one CPU, and
 * again on two; the time ends when everything freed is zeroed
 * (l1_arena_flush), so it is the sustained cost, not a burst.  Goals: <=
 * 1.5x the baseline on one CPU, <= 1.0x on two.
 */
#include <malloc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define SCEN "sustain"
#define BATCH 64u
#define LIVE 64u

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

/* ns per object, or -1.  mixed: the KV-size trace; else 16 KiB batches. */
static double run_pool(struct l1_arena *a, int mixed, uint64_t n)
{
	struct l1_obj o[BATCH];
	uint64_t seed = 0x5eed, t0 = bench_now_ns();
	if (!mixed) {
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

static double run_glibc(int mixed, uint64_t n)
{
	void *p[BATCH];
	uint64_t sz[BATCH];
	uint64_t seed = 0x5eed, t0 = bench_now_ns();
	if (!mixed) {
		for (uint64_t i = 0; i < n / BATCH; i++) {
			for (uint32_t j = 0; j < BATCH; j++) {
				if (!(p[j] = aligned_alloc(4096, 16384)))
					return -1;
				memset(p[j], 0, 16384);
			}
			for (uint32_t j = 0; j < BATCH; j++)
				free(p[j]);
		}
	} else {
		for (uint32_t i = 0; i < LIVE; i++) {
			sz[i] = kv_sizes[rnd(&seed) % NSIZES];
			if (!(p[i] = aligned_alloc(4096, sz[i])))
				return -1;
			memset(p[i], 0, sz[i]);
		}
		for (uint64_t i = 0; i < n; i++) {
			uint32_t k = (uint32_t)(rnd(&seed) % LIVE);
			free(p[k]);
			sz[k] = kv_sizes[rnd(&seed) % NSIZES];
			if (!(p[k] = aligned_alloc(4096, sz[k])))
				return -1;
			memset(p[k], 0, sz[k]);
		}
		for (uint32_t i = 0; i < LIVE; i++)
			free(p[i]);
	}
	return (double)(bench_now_ns() - t0) / (double)n;
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
	static const char *const trace[2] = { "16 KiB batches of 64", "mixed 16 KiB-2 MiB" };
	uint64_t n[2] = { c->quick ? 64000 : 256000, c->quick ? 2000 : 8000 };
	cpu_set_t all;
	int rc = 0;
	if (c->iters)
		n[0] = n[1] = c->iters;
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
		for (int m = 0; m < 2; m++) {
			double ours[3], base[3];
			for (int k = 0; k < 3; k++) {
				/* the engine starts here, on the CPUs bound now */
				struct l1_arena *a = bench_create(c, SCEN, 256ull << 20, 0, 1);
				if (!a)
					return 1;
				ours[k] = run_pool(a, m, n[m]);
				bench_destroy(a);
				base[k] = run_glibc(m, n[m]);
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
		}
	}
	bench_note(c, SCEN, "medians of 3; the pool's time ends when all it freed is zeroed");
out:
	sched_setaffinity(0, sizeof all, &all);
	return rc;
}
