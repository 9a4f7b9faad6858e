/*
 * bench_zero.c - scenario zero: what zero-on-free costs.  Part one frees
 * and re-zeroes 1 GiB of 2 MiB objects through a real pool with zeroing on
 * (free, then l1_arena_flush until nothing is dirty) and, from the same run
 * over the same objects, clears them with a single-thread memset: it prints
 * both throughputs (goal: the engine at least 0.5x memset) and the CPU time
 * of the freeing thread next to memset's (goal: under 5%).  Every object is
 * allocated again after each round and checked to read zero, so an engine
 * that skips work fails the scenario.  Part two is the allocate+free cost
 * of 16 KiB objects ([2,32,128] fp16, batches of 64) with zero-on-free on
 * against a pool with it off (goal: within 1.5x; the time inside the two
 * calls, the writer touching every object between them), while zeroed
 * memory is at hand (rounds of 3/4 of the pool, flushed between rounds,
 * untimed); the whole loop beside it, writes included (no goal); then
 * the sustained rate, which includes waiting for the engine and so is bound
 * by zeroing bandwidth (no goal; printed so nobody mistakes one for the
 * other).  --quick: smaller pools; --iters sets the rounds of both parts.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define SCEN "zero"
#define OBJ_BYTES (2 * MiB)
#define BATCH 64u

/* 1 when every byte of p[0..len) is zero; len a multiple of 8. */
static int all_zero(const void *p, uint64_t len)
{
	const uint64_t *w = p;
	uint64_t acc = 0;

	for (uint64_t i = 0; i < len / 8; i++)
		acc |= w[i];
	return acc == 0;
}

static void usage_method(struct l1_arena *a, char *buf, size_t len)
{
	struct l1_usage u;

	if (l1_arena_usage(a, &u) == 0)
		snprintf(buf, len, "%s on %s", u.zero_method, u.backing);
	else
		snprintf(buf, len, "unknown");
}

struct zero_run {
	uint64_t bytes;                 /* cleared per method */
	uint64_t uring_ns, free_cpu_ns, wait_cpu_ns, proc_cpu_ns;
	uint64_t memset_ns, memset_cpu_ns;
};

/* One round: fill, free, wait for the engine, allocate again and check,
 * then the same objects through memset. */
static int zero_round(const struct bench_ctx *c, struct l1_arena *a,
		      struct l1_obj *objs, uint32_t n, int round, struct zero_run *z)
{
	uint64_t t0, t1, c0, c1, c2, p0, p1;
	int r;

	for (uint32_t i = 0; i < n; i++)
		memset(objs[i].ptr, 0xa5 ^ round, objs[i].size);
	p0 = bench_process_cpu_ns();
	t0 = bench_now_ns();
	c0 = bench_thread_cpu_ns();
	r = l1_free(a, objs, n);
	c1 = bench_thread_cpu_ns();
	if (r == 0)
		r = l1_arena_flush(a, 120000);
	c2 = bench_thread_cpu_ns();
	t1 = bench_now_ns();
	p1 = bench_process_cpu_ns();
	if (r) {
		bench_note(c, SCEN, "free/flush failed: %s: %s", l1_strerror(r),
			   l1_last_error());
		return -1;
	}
	z->uring_ns += t1 - t0;
	z->free_cpu_ns += c1 - c0;
	z->wait_cpu_ns += c2 - c1;
	z->proc_cpu_ns += p1 - p0;

	r = l1_alloc_bytes(a, OBJ_BYTES, n, objs);
	if (r) {
		bench_note(c, SCEN, "allocating the zeroed objects again failed: %s: %s",
			   l1_strerror(r), l1_last_error());
		return -1;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (!all_zero(objs[i].ptr, objs[i].size)) {
			bench_note(c, SCEN, "object %" PRIu64 " not zero after flush: "
				   "zeroing is broken", objs[i].id);
			return -1;
		}
	}

	for (uint32_t i = 0; i < n; i++)
		memset(objs[i].ptr, 0x5a ^ round, objs[i].size);
	t0 = bench_now_ns();
	c0 = bench_thread_cpu_ns();
	for (uint32_t i = 0; i < n; i++)
		memset(objs[i].ptr, 0, objs[i].size);
	c1 = bench_thread_cpu_ns();
	t1 = bench_now_ns();
	z->memset_ns += t1 - t0;
	z->memset_cpu_ns += c1 - c0;
	z->bytes += (uint64_t)n * OBJ_BYTES;
	return 0;
}

static int zero_throughput(const struct bench_ctx *c)
{
	uint64_t total = c->quick ? 128 * MiB : 1 * GiB;
	uint32_t n = (uint32_t)(total / OBJ_BYTES);
	int rounds = c->iters ? (int)c->iters : c->quick ? 2 : 4;
	struct zero_run z = { 0 };
	struct l1_obj *objs = NULL;
	struct l1_arena *a;
	char method[128];
	int r, ret = 1;

	a = bench_create(c, "zero", total, 0, 1);
	if (!a)
		return 1;
	objs = calloc(n, sizeof *objs);
	if (!objs)
		goto out;
	usage_method(a, method, sizeof method);
	r = l1_alloc_bytes(a, OBJ_BYTES, n, objs);
	if (r) {
		bench_note(c, SCEN, "allocating %u x 2 MiB failed: %s: %s", n,
			   l1_strerror(r), l1_last_error());
		goto out;
	}
	/* a warm-up round faults everything in and starts the io-wq workers */
	if (zero_round(c, a, objs, n, 0, &z))
		goto out;
	memset(&z, 0, sizeof z);
	for (int i = 1; i <= rounds; i++)
		if (zero_round(c, a, objs, n, i, &z))
			goto out;

	double gb = (double)z.bytes / 1e9;
	double uring = gb / ((double)z.uring_ns / 1e9);
	double mset = gb / ((double)z.memset_ns / 1e9);
	double per_gib = (double)GiB / (double)z.bytes / 1e6;   /* ns -> ms/GiB */
	double free_ms = (double)z.free_cpu_ns * per_gib;
	double mset_ms = (double)z.memset_cpu_ns * per_gib;

	bench_note(c, SCEN, "zeroing: %s; %d rounds of %u x 2 MiB freed then flushed",
		   method, rounds, n);
	bench_report(c, SCEN, "zero_throughput", uring, "GB/s", "memset_1thread", mset,
		     ">= 0.5x memset", uring >= 0.5 * mset);
	bench_report(c, SCEN, "free_thread_cpu", free_ms, "ms/GiB", "memset_cpu", mset_ms,
		     "< 5% of memset CPU", free_ms < 0.05 * mset_ms);
	bench_note(c, SCEN, "freeing thread: %.2f ms/GiB in l1_free, %.2f ms/GiB waiting "
		   "in flush; whole process (engine + io-wq workers): %.2f ms/GiB CPU",
		   free_ms, (double)z.wait_cpu_ns * per_gib,
		   (double)z.proc_cpu_ns * per_gib);
	ret = 0;
out:
	free(objs);
	bench_destroy(a);
	return ret;
}

struct alloc_run {
	double call_ns;                 /* per object, zeroed memory at hand */
	double call_cpu_ns;             /* the same, CPU of the calling thread */
	double in_calls_ns;             /* the same, inside l1_alloc/l1_free only */
	double sustained_ns;            /* per object, until all is zeroed */
	char method[128];
};

/* One timed loop of `batches` allocate(64)+free(64); the writer touches
 * every object it gets, so the bytes have to go.  *ns: the whole loop;
 * *in_calls_ns: the time inside l1_alloc and l1_free only (the touch of a
 * freshly zeroed object is a cache miss the allocator does not cause). */
static int alloc_loop(struct l1_arena *a, const struct l1_layout *l, uint64_t batches,
		      uint64_t *ns, uint64_t *cpu_ns, uint64_t *in_calls_ns)
{
	struct l1_obj objs[BATCH];
	uint64_t t0 = bench_now_ns(), c0 = bench_thread_cpu_ns(), calls = 0, t;
	int r;

	for (uint64_t b = 0; b < batches; b++) {
		t = bench_now_ns();
		r = l1_alloc(a, l, BATCH, objs);
		calls += bench_now_ns() - t;
		if (r)
			return r;
		for (uint32_t i = 0; i < BATCH; i++)
			*(volatile uint64_t *)objs[i].ptr = b;
		t = bench_now_ns();
		r = l1_free(a, objs, BATCH);
		calls += bench_now_ns() - t;
		if (r)
			return r;
	}
	*cpu_ns += bench_thread_cpu_ns() - c0;
	*ns += bench_now_ns() - t0;
	*in_calls_ns += calls;
	return 0;
}

/* Faults the whole pool in (and lets the engine zero it once), so the timed
 * loops measure the allocator, not first touches of huge pages. */
static int prefault(struct l1_arena *a, uint64_t pool)
{
	struct l1_obj o;
	int r = l1_alloc_bytes(a, pool, 1, &o);

	if (r)
		return r;
	memset(o.ptr, 1, o.size);
	r = l1_free(a, &o, 1);
	return r ? r : l1_arena_flush(a, 120000);
}

static int alloc_free_cost(const struct bench_ctx *c, int zero_on_free, int rounds,
			   struct alloc_run *out)
{
	uint64_t pool = c->quick ? 256 * MiB : 1 * GiB;
	/* three quarters of the pool per round: zeroed memory is always at
	 * hand, so the calls never wait for the engine */
	uint64_t fits = pool / (BATCH * 16 * 1024) * 3 / 4;
	uint64_t ns = 0, cpu = 0, sns = 0, scpu = 0, calls = 0, scalls = 0;
	struct l1_layout l;
	struct l1_arena *a;
	int r, ret = 1;

	r = l1_layout_parse("[2,32,128]:fp16", &l);
	if (r) {
		bench_note(c, SCEN, "layout: %s", l1_last_error());
		return 1;
	}
	/* a record for every 16 KiB of the pool: the default (one per 64 KiB)
	 * would run out of records long before bytes, and the loop would
	 * measure waiting for records instead of the calls */
	a = bench_create_objs(c, SCEN, pool, 0, zero_on_free, pool / (16 * 1024));
	if (!a)
		return 1;
	usage_method(a, out->method, sizeof out->method);
	r = prefault(a, pool);
	if (r)
		goto fail;
	r = alloc_loop(a, &l, fits / 4, &sns, &scpu, &scalls);          /* warm-up */
	if (r || (r = l1_arena_flush(a, 120000)))
		goto fail;
	for (int i = 0; i < rounds; i++) {
		r = alloc_loop(a, &l, fits, &ns, &cpu, &calls);
		if (r || (r = l1_arena_flush(a, 120000)))
			goto fail;
	}
	out->call_ns = (double)ns / (double)(rounds * fits * BATCH);
	out->call_cpu_ns = (double)cpu / (double)(rounds * fits * BATCH);
	out->in_calls_ns = (double)calls / (double)(rounds * fits * BATCH);

	/* sustained: four pools' worth in one go, then the wait for the last
	 * of the zeroing; bound by how fast the engine clears memory */
	sns = 0;
	{
		uint64_t t0 = bench_now_ns();
		r = alloc_loop(a, &l, 4 * fits * 4 / 3, &sns, &scpu, &scalls);
		if (r || (r = l1_arena_flush(a, 120000)))
			goto fail;
		sns = bench_now_ns() - t0;
	}
	out->sustained_ns = (double)sns / (double)(4 * fits * 4 / 3 * BATCH);
	ret = 0;
	goto out;
fail:
	bench_note(c, SCEN, "alloc/free (zero_on_free=%d) failed: %s: %s", zero_on_free,
		   l1_strerror(r), l1_last_error());
out:
	bench_destroy(a);
	return ret;
}

static int alloc_cost(const struct bench_ctx *c)
{
	int rounds = c->iters ? (int)c->iters : c->quick ? 2 : 5;
	struct alloc_run off = { 0 }, on = { 0 };

	if (alloc_free_cost(c, 0, rounds, &off) || alloc_free_cost(c, 1, rounds, &on))
		return 1;
	bench_note(c, SCEN, "alloc+free, batches of %u x 16 KiB ([2,32,128] fp16), "
		   "%d rounds of 3/4 of the pool; zeroing: %s", BATCH, rounds, on.method);
	bench_report(c, SCEN, "alloc_free_16k_zero_on", on.in_calls_ns, "ns/obj",
		     "zero_on_free_off", off.in_calls_ns, "<= 1.5x off",
		     on.in_calls_ns <= 1.5 * off.in_calls_ns);
	bench_report(c, SCEN, "alloc_free_16k_loop_with_write", on.call_ns, "ns/obj",
		     "zero_on_free_off", off.call_ns, "n/a: includes the writer's cache misses", -1);
	bench_report(c, SCEN, "alloc_free_16k_sustained", on.sustained_ns, "ns/obj",
		     "zero_on_free_off", off.sustained_ns,
		     "n/a: bound by zeroing bandwidth", -1);
	bench_note(c, SCEN, "zero_on = time inside l1_alloc + l1_free; loop_with_write = the "
		   "whole loop, whose one-word write per object misses the cache with zeroing on "
		   "(the bytes were just zeroed elsewhere) and hits it with zeroing off (the same "
		   "1 MiB every batch); calling thread CPU per object: %.1f ns on, %.1f ns off; "
		   "sustained = until everything freed is zeroed",
		   on.call_cpu_ns, off.call_cpu_ns);
	return 0;
}

int bench_zero(const struct bench_ctx *c)
{
	int r = zero_throughput(c);

	r |= alloc_cost(c);
	return r;
}
