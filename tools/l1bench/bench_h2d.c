/*
 * bench_h2d.c - scenario h2d: how fast KV objects move between the pool and
 * a GPU.  Copies 4 GiB of 16 MiB objects host->device and back (cudaMemcpyAsync
 * on the default stream, timed with CUDA events) from three sources in the
 * same run: objects of a pinned pool (pin=AUTO, eager), one cudaHostAlloc
 * buffer (the baseline; goal: the pool within 5% of it) and plain pageable
 * malloc memory.  Then the time to attach a 16 GiB eager pool with pinning,
 * next to an unpinned attach plus cudaHostRegister by hand over the same
 * mapping.  --quick: 256 MiB of objects and a 1 GiB pool.  The data that
 * comes back is checked, so a wrong copy fails the scenario.  libcudart is
 * loaded with dlopen like arena/pin.c; without a usable GPU the scenario
 * prints "skipped: <why>" and returns 0.
 */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)
#define SCEN "h2d"

enum { H2D = 1, D2H = 2 };

struct cuda {
	void *dl;
	int (*get_device_count)(int *);
	const char *(*err)(int);
	int (*set_device)(int);
	int (*malloc)(void **, size_t);
	int (*free)(void *);
	int (*host_alloc)(void **, size_t, unsigned);
	int (*free_host)(void *);
	int (*host_register)(void *, size_t, unsigned);
	int (*host_unregister)(void *);
	int (*memcpy_async)(void *, const void *, size_t, int, void *);
	int (*event_create)(void **);
	int (*event_destroy)(void *);
	int (*event_record)(void *, void *);
	int (*event_sync)(void *);
	int (*event_elapsed)(float *, void *, void *);
};

/* 0 with *cu ready on device 0, or -1 with why filled in. */
static int cuda_load(struct cuda *cu, char *why, size_t len)
{
	static const char *const names[] = {
		"libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11",
		"/usr/local/cuda/lib64/libcudart.so", "/usr/local/cuda/lib64/libcudart.so.13",
		"/usr/local/cuda/lib64/libcudart.so.12", "/usr/local/cuda/lib64/libcudart.so.11",
	};
	const char *env = getenv("L1ARENA_CUDART");
	int n = 0, e;

	memset(cu, 0, sizeof *cu);
	if (env && *env)
		cu->dl = dlopen(env, RTLD_NOW | RTLD_LOCAL);
	for (size_t i = 0; !cu->dl && i < sizeof names / sizeof *names; i++)
		cu->dl = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!cu->dl) {
		snprintf(why, len, "no libcudart (tried %s and libcudart.so{,.13,.12,.11})",
			 env && *env ? env : "$L1ARENA_CUDART unset");
		return -1;
	}
	struct { void **fn; const char *name; } syms[] = {
		{ (void **)&cu->get_device_count, "cudaGetDeviceCount" },
		{ (void **)&cu->err, "cudaGetErrorString" },
		{ (void **)&cu->set_device, "cudaSetDevice" },
		{ (void **)&cu->malloc, "cudaMalloc" },
		{ (void **)&cu->free, "cudaFree" },
		{ (void **)&cu->host_alloc, "cudaHostAlloc" },
		{ (void **)&cu->free_host, "cudaFreeHost" },
		{ (void **)&cu->host_register, "cudaHostRegister" },
		{ (void **)&cu->host_unregister, "cudaHostUnregister" },
		{ (void **)&cu->memcpy_async, "cudaMemcpyAsync" },
		{ (void **)&cu->event_create, "cudaEventCreate" },
		{ (void **)&cu->event_destroy, "cudaEventDestroy" },
		{ (void **)&cu->event_record, "cudaEventRecord" },
		{ (void **)&cu->event_sync, "cudaEventSynchronize" },
		{ (void **)&cu->event_elapsed, "cudaEventElapsedTime" },
	};
	for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
		*syms[i].fn = dlsym(cu->dl, syms[i].name);
		if (!*syms[i].fn) {
			snprintf(why, len, "libcudart lacks %s", syms[i].name);
			goto out_close;
		}
	}
	e = cu->get_device_count(&n);
	if (e || n < 1) {
		snprintf(why, len, "no usable GPU: %s", e ? cu->err(e) : "no device");
		goto out_close;
	}
	e = cu->set_device(0);
	if (e) {
		snprintf(why, len, "cudaSetDevice(0): %s", cu->err(e));
		goto out_close;
	}
	return 0;
out_close:
	dlclose(cu->dl);
	cu->dl = NULL;
	return -1;
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

static void fill(void *p, uint64_t len, uint64_t seed)
{
	uint64_t *w = p;
	for (uint64_t i = 0; i < len / 8; i++)
		w[i] = mix(seed + i);
}

static int verify(const void *p, uint64_t len, uint64_t seed)
{
	const uint64_t *w = p;
	for (uint64_t i = 0; i < len / 8; i++)
		if (w[i] != mix(seed + i))
			return 0;
	return 1;
}

struct run {
	struct cuda *cu;
	char *dev;                      /* n * obj bytes on the GPU */
	void *start, *stop;             /* events */
	uint32_t n;
	uint64_t obj;
	uint64_t iters;
};

/* Copies src[0..n) to the device (dir H2D) or back (D2H) iters times after
 * one warm-up; GB/s, or a negative value on a CUDA error. */
static double measure(const struct run *r, void *const *src, int dir, char *why,
		      size_t len)
{
	double ms_total = 0;
	int e = 0;

	for (uint64_t it = 0; it <= r->iters && !e; it++) {
		float ms = 0;
		e = r->cu->event_record(r->start, NULL);
		for (uint32_t i = 0; i < r->n && !e; i++) {
			char *d = r->dev + (uint64_t)i * r->obj;
			e = dir == H2D ? r->cu->memcpy_async(d, src[i], r->obj, H2D, NULL)
				       : r->cu->memcpy_async(src[i], d, r->obj, D2H, NULL);
		}
		if (!e)
			e = r->cu->event_record(r->stop, NULL);
		if (!e)
			e = r->cu->event_sync(r->stop);
		if (!e)
			e = r->cu->event_elapsed(&ms, r->start, r->stop);
		if (it > 0)             /* the first pass warms up */
			ms_total += ms;
	}
	if (e) {
		snprintf(why, len, "copy failed: %s", r->cu->err(e));
		return -1;
	}
	return (double)r->n * r->obj * r->iters / (ms_total / 1e3) / 1e9;
}

/* H2D then D2H from src; the bytes that come back must be what was sent. */
static int measure_both(const struct run *r, void *const *src, double *h2d, double *d2h,
			char *why, size_t len)
{
	*h2d = measure(r, src, H2D, why, len);
	if (*h2d < 0)
		return -1;
	for (uint32_t i = 0; i < r->n; i++)
		memset(src[i], 0, r->obj);
	*d2h = measure(r, src, D2H, why, len);
	if (*d2h < 0)
		return -1;
	for (uint32_t i = 0; i < r->n; i++)
		if (!verify(src[i], r->obj, 1000 + i)) {
			snprintf(why, len, "object %u came back from the GPU different", i);
			return -1;
		}
	return 0;
}

static struct l1_arena *pool_create(const struct bench_ctx *c, const char *name,
				    uint64_t size, uint64_t step, int pin, char *path,
				    unsigned plen)
{
	struct l1_config cfg;
	struct l1_arena *a = NULL;
	int r;

	l1_config_init(&cfg);
	cfg.path = bench_pool_path(c, name, path, plen);
	cfg.size_bytes = size;
	cfg.grow_step_bytes = step;
	cfg.lazy = 0;
	cfg.pin = pin;
	cfg.allow_shm = c->allow_shm;
	cfg.force = 1;
	r = l1_arena_create(&cfg, &a);
	if (r < 0) {
		bench_note(c, SCEN, "cannot create a %" PRIu64 " MiB pool at %s: %s: %s",
			   size >> 20, path, l1_strerror(r), l1_last_error());
		return NULL;
	}
	return a;
}

/* This process's pin status; notes the reason unless PINNED. */
static int pool_pinned(const struct bench_ctx *c, struct l1_arena *a, const char *what)
{
	struct l1_client_info ci[64];
	int n = l1_arena_clients(a, ci, 64);
	for (int i = 0; i < n; i++)
		if (ci[i].pid == (int32_t)getpid()) {
			if (ci[i].pin_status == L1_PIN_PINNED)
				return 1;
			bench_note(c, SCEN, "%s is NOT pinned (status %u): %s", what,
				   ci[i].pin_status, ci[i].pin_reason);
			return 0;
		}
	bench_note(c, SCEN, "%s: no client entry for this process", what);
	return 0;
}

static int copies(const struct bench_ctx *c, struct cuda *cu)
{
	const uint64_t obj = 16 * MiB;
	const uint64_t total = c->quick ? 256 * MiB : 4 * GiB;
	const uint64_t step = c->quick ? 64 * MiB : GiB;
	const uint32_t n = (uint32_t)(total / obj);
	char path[512], why[256] = "";
	struct run r = { .cu = cu, .n = n, .obj = obj, .iters = c->iters ? c->iters : 3 };
	struct l1_arena *a = NULL;
	struct l1_obj *objs = calloc(n, sizeof *objs);
	void **src = calloc(n, sizeof *src);
	char *host = NULL, *pageable = NULL;
	double ph, pd, hh, hd, gh, gd;
	int e, rc = -1, allocated = 0;

	if (!objs || !src) {
		bench_note(c, SCEN, "out of memory");
		goto out;
	}
	e = cu->malloc((void **)&r.dev, total);
	if (e) {
		bench_note(c, SCEN, "cudaMalloc(%" PRIu64 " MiB): %s", total >> 20, cu->err(e));
		goto out;
	}
	if (cu->event_create(&r.start) || cu->event_create(&r.stop)) {
		bench_note(c, SCEN, "cudaEventCreate failed");
		goto out;
	}

	/* The pool, pinned at create. */
	a = pool_create(c, "h2d", total + step, step, L1_PIN_AUTO, path, sizeof path);
	if (!a)
		goto out;
	pool_pinned(c, a, "the pool");
	e = l1_alloc_bytes(a, obj, n, objs);
	if (e < 0) {
		bench_note(c, SCEN, "allocating %u objects of 16 MiB: %s: %s", n,
			   l1_strerror(e), l1_last_error());
		goto out;
	}
	allocated = 1;
	for (uint32_t i = 0; i < n; i++) {
		src[i] = objs[i].ptr;
		fill(src[i], obj, 1000 + i);
	}
	if (measure_both(&r, src, &ph, &pd, why, sizeof why))
		goto out_why;

	/* cudaHostAlloc: the baseline. */
	e = cu->host_alloc((void **)&host, total, 0);
	if (e) {
		bench_note(c, SCEN, "cudaHostAlloc(%" PRIu64 " MiB): %s", total >> 20, cu->err(e));
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		src[i] = host + (uint64_t)i * obj;
		fill(src[i], obj, 1000 + i);
	}
	if (measure_both(&r, src, &hh, &hd, why, sizeof why))
		goto out_why;

	/* Pageable memory, touched first so that faults are not timed. */
	pageable = aligned_alloc(4096, total);
	if (!pageable) {
		bench_note(c, SCEN, "malloc(%" PRIu64 " MiB) failed", total >> 20);
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		src[i] = pageable + (uint64_t)i * obj;
		fill(src[i], obj, 1000 + i);
	}
	if (measure_both(&r, src, &gh, &gd, why, sizeof why))
		goto out_why;

	bench_note(c, SCEN, "%u objects of 16 MiB (%" PRIu64 " MiB) each way, %" PRIu64
		   " timed passes after one warm-up", n, total >> 20, r.iters);
	bench_report(c, SCEN, "pool h2d", ph, "GB/s", "cudaHostAlloc", hh,
		     "within 5% of cudaHostAlloc", ph >= 0.95 * hh);
	bench_report(c, SCEN, "pool d2h", pd, "GB/s", "cudaHostAlloc", hd,
		     "within 5% of cudaHostAlloc", pd >= 0.95 * hd);
	bench_report(c, SCEN, "pageable h2d", gh, "GB/s", "cudaHostAlloc", hh, NULL, -1);
	bench_report(c, SCEN, "pageable d2h", gd, "GB/s", "cudaHostAlloc", hd, NULL, -1);
	rc = 0;
	goto out;
out_why:
	bench_note(c, SCEN, "%s", why);
out:
	free(pageable);
	if (host)
		cu->free_host(host);
	if (a) {
		if (allocated)
			l1_free(a, objs, n);
		bench_destroy(a);
	}
	if (r.start)
		cu->event_destroy(r.start);
	if (r.stop)
		cu->event_destroy(r.stop);
	if (r.dev)
		cu->free(r.dev);
	free(src);
	free(objs);
	return rc;
}

static int attach_time(const struct bench_ctx *c, struct cuda *cu)
{
	const uint64_t size = c->quick ? GiB : 16 * GiB;
	const uint64_t step = GiB;
	char path[512];
	struct l1_open_opts o;
	struct l1_vm_space vm;
	struct l1_arena *a, *b = NULL;
	double t_plain, t_raw = 0, t_pinned;
	uint64_t t0, done = 0;
	int e, rc = -1;

	/* Created unpinned: the creator faults every page in, so the attaches
	 * below time mapping and registration, not first touch. */
	a = pool_create(c, "h2d-attach", size, step, L1_PIN_OFF, path, sizeof path);
	if (!a)
		return -1;

	l1_open_opts_init(&o);
	o.pin = L1_PIN_OFF;
	t0 = bench_now_ns();
	e = l1_arena_open(path, &o, &b);
	t_plain = (bench_now_ns() - t0) / 1e9;
	if (e < 0)
		goto out_open;
	/* cudaHostRegister by hand, in the same chunks, over that mapping. */
	e = l1_get_vm_space(b, &vm);
	if (e < 0)
		goto out_open;
	t0 = bench_now_ns();
	for (done = 0; done < vm.data_size; done += step) {
		uint64_t len = vm.data_size - done < step ? vm.data_size - done : step;
		e = cu->host_register((char *)vm.base + vm.data_offset + done, len, 1);
		if (e)
			break;
	}
	t_raw = (bench_now_ns() - t0) / 1e9;
	for (uint64_t off = 0; off < done; off += step)
		cu->host_unregister((char *)vm.base + vm.data_offset + off);
	if (e) {
		bench_note(c, SCEN, "cudaHostRegister by hand failed: %s", cu->err(e));
		goto out;
	}
	l1_arena_close(b);
	b = NULL;

	o.pin = L1_PIN_AUTO;
	t0 = bench_now_ns();
	e = l1_arena_open(path, &o, &b);
	t_pinned = (bench_now_ns() - t0) / 1e9;
	if (e < 0)
		goto out_open;
	e = l1_get_vm_space(b, &vm);
	if (e < 0)
		goto out_open;
	/* The creator's handle shares this pid in the client table, so count
	 * what this handle registered instead. */
	struct l1_range rg[128];
	uint64_t pinned = 0;
	int nr = l1_arena_pinned_ranges(b, rg, 128);
	for (int i = 0; i < nr && i < 128; i++)
		pinned += rg[i].len;
	if (pinned < vm.data_size)
		bench_note(c, SCEN, "only %" PRIu64 " of %" PRIu64 " MiB were pinned at attach",
			   pinned >> 20, vm.data_size >> 20);
	bench_note(c, SCEN, "attach of a %" PRIu64 " GiB eager pool: %.3f s unpinned, "
		   "cudaHostRegister by hand %.3f s; %d range(s) pinned", size >> 30,
		   t_plain, t_raw, nr);
	char metric[48];
	snprintf(metric, sizeof metric, "attach %" PRIu64 " GiB pinned", size >> 30);
	bench_report(c, SCEN, metric, t_pinned, "s", "unpinned attach + register by hand",
		     t_plain + t_raw, NULL, -1);
	rc = 0;
	goto out;
out_open:
	bench_note(c, SCEN, "attaching %s: %s: %s", path, l1_strerror(e), l1_last_error());
out:
	l1_arena_close(b);
	bench_destroy(a);
	return rc;
}

int bench_h2d(const struct bench_ctx *c)
{
	struct cuda cu;
	char why[256];
	int rc;

	if (cuda_load(&cu, why, sizeof why)) {
		bench_note(c, SCEN, "skipped: %s", why);
		return 0;
	}
	rc = copies(c, &cu);
	if (attach_time(c, &cu))
		rc = -1;
	dlclose(cu.dl);
	return rc ? 1 : 0;
}
