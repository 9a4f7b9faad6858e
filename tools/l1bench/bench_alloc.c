/*
 * bench_alloc.c - scenarios alloc, alloc-mp and meta.  alloc: batches of 64
 * objects of the layout [2,32,128] fp16 (16 KiB), allocate then free, one
 * process, zero-on-free off, against the same trace through glibc
 * aligned_alloc(4096)/free with heap trimming and mmap thresholds raised
 * (otherwise glibc returns the heap top to the kernel after every batch and
 * the baseline measures page faults).  alloc-mp: the same from 2 processes
 * on one pool, aggregate throughput beside the 1-process figure.  meta:
 * metadata bytes over pool size for a 64 GiB pool with the default object
 * limit, measured on a real (lazy, sparse) pool.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define BATCH 64

static uint64_t iters_of(const struct bench_ctx *c, uint64_t dflt)
{
	return c->iters ? c->iters : c->quick ? dflt / 10 : dflt;
}

/* ns per object for alloc+free of `iters` batches; -1 on error. */
static double run_pool(struct l1_arena *a, const struct l1_layout *l, uint64_t iters)
{
	struct l1_obj o[BATCH];
	for (int w = 0; w < 100; w++) {         /* warm up: layout cache, page tables */
		if (l1_alloc(a, l, BATCH, o) || l1_free(a, o, BATCH))
			return -1;
	}
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < iters; i++) {
		if (l1_alloc(a, l, BATCH, o) || l1_free(a, o, BATCH))
			return -1;
	}
	return (double)(bench_now_ns() - t0) / (double)(iters * BATCH);
}

static double run_glibc(uint64_t iters)
{
	void *p[BATCH];
	mallopt(M_TRIM_THRESHOLD, 1 << 30);
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TOP_PAD, 64 << 20);
	for (int w = 0; w < 100; w++) {
		for (int j = 0; j < BATCH; j++)
			p[j] = aligned_alloc(4096, 16384);
		for (int j = 0; j < BATCH; j++)
			free(p[j]);
	}
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < iters; i++) {
		for (int j = 0; j < BATCH; j++) {
			p[j] = aligned_alloc(4096, 16384);
			if (!p[j])
				return -1;
			*(volatile char *)p[j] = 1;
		}
		for (int j = 0; j < BATCH; j++)
			free(p[j]);
	}
	return (double)(bench_now_ns() - t0) / (double)(iters * BATCH);
}

int bench_alloc(const struct bench_ctx *c)
{
	struct l1_layout l;
	uint64_t iters = iters_of(c, 200000);
	l1_layout_parse("[2,32,128]:fp16", &l);
	struct l1_arena *a = bench_create(c, "alloc", 256ull << 20, 0, 0);
	if (!a)
		return 1;
	double ours = run_pool(a, &l, iters);
	bench_destroy(a);
	double base = run_glibc(iters);
	if (ours < 0 || base < 0) {
		bench_note(c, "alloc", "allocation failed during the run");
		return 1;
	}
	bench_report(c, "alloc", "alloc+free ns/object (16 KiB, batch 64)", ours, "ns",
		     "glibc aligned_alloc", base, "<= 150 ns", ours <= 150);
	bench_report(c, "alloc", "ratio to glibc", ours / base, "x", NULL, 0, "<= 3x",
		     ours <= 3 * base);
	return 0;
}

int bench_alloc_mp(const struct bench_ctx *c)
{
	struct l1_layout l;
	uint64_t iters = iters_of(c, 100000);
	l1_layout_parse("[2,32,128]:fp16", &l);
	struct l1_arena *a = bench_create(c, "allocmp", 256ull << 20, 0, 0);
	if (!a)
		return 1;
	double one = run_pool(a, &l, iters);
	/* two processes on one pool, started together */
	int go[2];
	if (pipe(go) < 0) {
		bench_destroy(a);
		return 1;
	}
	pid_t kids[2];
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		if (kids[k] == 0) {
			struct l1_arena *b;
			struct l1_open_opts o;
			char ch;
			l1_open_opts_init(&o);
			o.pin = L1_PIN_OFF;
			if (l1_arena_open(l1_arena_path(a), &o, &b))
				_exit(1);
			close(go[1]);
			if (read(go[0], &ch, 1) < 0)
				_exit(1);
			double r = run_pool(b, &l, iters);
			l1_arena_close(b);
			_exit(r < 0 ? 1 : 0);
		}
	}
	close(go[0]);
	usleep(200000);
	uint64_t t0 = bench_now_ns();
	close(go[1]);
	int ok = 1;
	for (int k = 0; k < 2; k++) {
		int st;
		waitpid(kids[k], &st, 0);
		ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	double secs = (double)(bench_now_ns() - t0) / 1e9;
	char rep[256];
	int problems = l1_arena_memcheck(a, 0, rep, sizeof rep);
	bench_destroy(a);
	if (!ok || one < 0) {
		bench_note(c, "alloc-mp", "a worker failed");
		return 1;
	}
	/* the 100 warm-up batches of each worker run inside the timed window too */
	double agg = (double)(2 * (iters + 100) * BATCH) / secs / 1e6;
	bench_report(c, "alloc-mp", "2 processes: Mobj/s (alloc+free)", agg, "Mobj/s",
		     "1 process", 1e3 / one, NULL, -1);
	bench_report(c, "alloc-mp", "memcheck problems after the run", problems, "", NULL, 0,
		     "0", problems == 0);
	return 0;
}

int bench_meta(const struct bench_ctx *c)
{
	char path[512];
	struct l1_config cfg;
	struct l1_arena *a;
	l1_config_init(&cfg);
	/* a sparse shm file: only the metadata and one step are committed */
	snprintf(path, sizeof path, "/dev/shm/l1bench-meta-%d", (int)getpid());
	cfg.path = path;
	cfg.size_bytes = 64ull << 30;
	cfg.lazy = 1;
	cfg.grow_step_bytes = 2ull << 20;
	cfg.init_size_bytes = 2ull << 20;
	cfg.allow_shm = 1;
	cfg.pin = L1_PIN_OFF;
	cfg.force = 1;
	int r = l1_arena_create(&cfg, &a);
	if (r) {
		bench_note(c, "meta", "cannot create a 64 GiB lazy pool: %s", l1_last_error());
		return 1;
	}
	struct l1_usage u;
	l1_arena_usage(a, &u);
	double pct = 100.0 * (double)u.metadata_bytes / (double)u.total_bytes;
	bench_report(c, "meta", "metadata / pool, 64 GiB, default limit", pct, "%", NULL, 0,
		     "<= 0.5%", pct <= 0.5);
	bench_note(c, "meta", "%llu bytes of metadata for %llu objects max",
		   (unsigned long long)u.metadata_bytes, (unsigned long long)u.max_objects);
	l1_arena_close(a);
	l1_arena_destroy(path, 1);
	return 0;
}
