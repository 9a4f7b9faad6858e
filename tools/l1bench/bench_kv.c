/*
 * bench_kv.c - scenario kv: an LMCache-like trace on one pool.  Requests
 * arrive for documents (prompts) drawn from a Zipf(1.0) popularity over a
 * universe several times larger than the pool; each document belongs to one
 * of four models and has 1..max 256-token chunks, the last one partial.
 * Per request, as LMCache's store/retrieve path does: look up the chunks in
 * order (l1_hold_key + l1_release of every object of a chunk) up to the
 * first miss, then allocate what is missing (full chunks in one batched
 * allocate, the partial last chunk in another) and publish it under its key;
 * when usage passes the watermark (0.8 of the pool) evict least recently used
 * chunks down to 0.7, and evict on an allocation failure as LMCache does.
 *
 * Layouts (fp16, a chunk of T tokens, L layers, H KV heads of dim D):
 *   Llama-3-8B      [2,L,T,H*D] per chunk ("KV_2LTD", all layers): 32 MiB
 *   Mistral-7B      layer by layer, L objects [2,T,H*D] per chunk: 32 x 1 MiB
 *   Qwen2-0.5B      [2,L,T,H*D]: 3 MiB
 *   TinyLlama-1.1B  [2,L,T,H*D]: 5.5 MiB
 * The partial last chunk has a whole number of vLLM's 16-token blocks (not
 * any token count): the pool interns every distinct layout in a table of
 * 1024 that is never emptied, and 4 models x 256 token counts would fill it.
 * Zero-on-free is on, as in production, so freed memory is zeroed before it
 * is handed out again.  In the main passes objects are not filled (the
 * figures are the allocator's, back to back: every freed byte must still be
 * zeroed once, so there the rate is bound by zeroing, not bookkeeping).  A
 * third pass fills every object's bytes after allocate, as a store fills it
 * with the KV copied from the GPU, and replays glibc with the same fill: the
 * like-for-like figure for a store path, whose pace leaves the engine time
 * (glibc pays for its bytes there too, in page faults and munmap).
 *
 * Figures: allocations/s over the time spent in allocate and free, and the
 * p50/p99 latency of one allocate call (all calls, and the successful ones
 * alone), beside glibc malloc/free replaying
 * the very same sequence of sizes, batches and frees (recorded during the
 * pool run); the utilisation reached before the first OUT_OF_MEMORY without
 * eviction, on a fresh pool and again after the trace has churned it
 * (fragmentation), goal >= 0.97, beside the same trace run on a pool of
 * bytes alone (an allocate fails only when fewer bytes are free than it
 * asks for: what a pool that never fragments would reach); the bytes zeroed
 * per object, and the zeroing bandwidth 0.5x glibc's allocations/s would
 * take beside what memset on every CPU clears here; the hit ratio and
 * lookups/s of the trace.
 * --quick: a 512 MiB pool and 1500 requests; default 2 GiB and 20000;
 * --iters sets the number of requests.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <unistd.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define SCEN "kv"
#define CHUNK 256
#define BLOCK 16                        /* partial chunks: whole vLLM blocks */
#define MAX_CHUNKS 8
#define GOLDEN 0x9e3779b97f4a7c15ull

struct model {
	const char *name;
	uint32_t layers, kv_heads, head_dim, layerwise, max_chunks, weight;
};

static const struct model models[] = {
	{ "meta-llama/Meta-Llama-3-8B", 32, 8, 128, 0, 3, 30 },
	{ "mistralai/Mistral-7B-v0.1", 32, 8, 128, 1, 3, 20 },
	{ "Qwen/Qwen2-0.5B", 24, 2, 64, 0, 8, 25 },
	{ "TinyLlama/TinyLlama-1.1B-Chat-v1.0", 22, 4, 64, 0, 6, 25 },
};
#define NMODELS (sizeof models / sizeof models[0])

struct doc {
	const struct model *m;
	uint32_t nchunks, last_tokens;
	uint64_t hash;
};

/* A chunk of a document in the pool: its objects and its LRU links. */
struct unit {
	uint64_t *ids;                  /* NULL when not in the pool */
	uint64_t bytes;                 /* of all its objects (rounded) */
	uint64_t handle;                /* first handle in the recorded trace */
	int32_t prev, next;             /* LRU list, -1 = none */
};

/* The recorded allocate/free sequence, for the glibc replay. */
struct op {
	uint64_t size;                  /* 0 = free */
	uint64_t handle;                /* first handle */
	uint32_t count;
};

struct trace {
	struct l1_arena *a;
	struct doc *docs;
	double *cdf;
	uint32_t ndocs;
	struct unit *units;             /* ndocs x MAX_CHUNKS */
	int32_t lru_head, lru_tail;     /* head = most recent */
	uint64_t rng;
	uint64_t total, high, low;
	int evict;                      /* evict at the watermark and on failure */
	int record;
	/* counters and samples */
	uint64_t *lat;                  /* ns per allocate call */
	uint64_t nlat, caplat;
	uint64_t *lat_ok;               /* ns per allocate call that found room */
	uint64_t nlat_ok, caplat_ok;
	uint64_t objs_allocated, alloc_ns, free_ns, evicted_units, forced;
	int fill;                       /* write every object, as a store does */
	int ideal;                      /* bytes only: no pool calls, no placement */
	uint64_t ideal_used, block;     /* its used bytes; the pool's block size */
	uint64_t fill_ns;
	uint64_t lookups, lookup_ns, hits, misses;
	struct op *ops;
	uint64_t nops, capops, handles;
	uint64_t first_oom_used;        /* used bytes at the first OOM (no eviction) */
	uint64_t oom_largest;           /* largest free run then */
	uint64_t oom_dirty;             /* and the freed bytes not yet zeroed */
	uint64_t oom_bytes;             /* and the allocate that failed: count x bytes */
	uint32_t oom_count;
};

static uint64_t mix(uint64_t x)
{
	x += GOLDEN;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static double uniform(struct trace *t)
{
	t->rng = mix(t->rng);
	return (double)(t->rng >> 11) / 9007199254740992.0;
}

static int push(void **arr, uint64_t *cap, uint64_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	uint64_t nc = *cap ? *cap * 2 : 4096;
	void *p = realloc(*arr, nc * elem);
	if (!p)
		return -1;
	*arr = p;
	*cap = nc;
	return 0;
}

static void make_docs(struct trace *t, uint32_t ndocs)
{
	double sum = 0;
	for (uint32_t d = 0; d < ndocs; d++) {
		uint64_t h = mix(0x6b76ull * GOLDEN + d);
		unsigned pick = (unsigned)(h % 100), acc = 0, i;
		for (i = 0; i + 1 < NMODELS; i++) {
			acc += models[i].weight;
			if (pick < acc)
				break;
		}
		t->docs[d].m = &models[i];
		t->docs[d].nchunks = 1 + (uint32_t)((h >> 8) % models[i].max_chunks);
		t->docs[d].last_tokens = BLOCK * (1 + (uint32_t)((h >> 24) % (CHUNK / BLOCK)));
		t->docs[d].hash = h;
		sum += 1.0 / (d + 1);           /* Zipf, s = 1.0 */
		t->cdf[d] = sum;
	}
	for (uint32_t d = 0; d < ndocs; d++)
		t->cdf[d] /= sum;
}

static uint32_t pick_doc(struct trace *t)
{
	double u = uniform(t);
	uint32_t lo = 0, hi = t->ndocs - 1;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (t->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* popularity rank -> a document id not correlated with its model */
	return (uint32_t)(mix(lo) % t->ndocs);
}

static uint32_t per_chunk(const struct doc *d)
{
	return d->m->layerwise ? d->m->layers : 1;
}

static void chunk_layout(const struct doc *d, uint32_t c, struct l1_layout *l)
{
	uint64_t tokens = c + 1 == d->nchunks ? d->last_tokens : CHUNK;
	uint64_t width = (uint64_t)d->m->kv_heads * d->m->head_dim;
	memset(l, 0, sizeof *l);
	l->ntensors = 1;
	l->t[0].dtype = L1_DTYPE_FP16;
	if (d->m->layerwise) {
		l->t[0].ndim = 3;
		l->t[0].shape[0] = 2;
		l->t[0].shape[1] = tokens;
		l->t[0].shape[2] = width;
	} else {
		l->t[0].ndim = 4;
		l->t[0].shape[0] = 2;
		l->t[0].shape[1] = d->m->layers;
		l->t[0].shape[2] = tokens;
		l->t[0].shape[3] = width;
	}
}

static void key_of(const struct doc *d, uint32_t c, uint32_t layer, char *key, size_t len)
{
	uint64_t h = mix(d->hash ^ ((uint64_t)(c + 1) * GOLDEN));
	if (d->m->layerwise)
		snprintf(key, len, "vllm@%s@1@0@%016llx@%u", d->m->name, (unsigned long long)h,
			 layer);
	else
		snprintf(key, len, "vllm@%s@1@0@%016llx", d->m->name, (unsigned long long)h);
}

/* ---- LRU of units -------------------------------------------------------- */

static void lru_unlink(struct trace *t, int32_t u)
{
	struct unit *x = &t->units[u];
	if (x->prev >= 0)
		t->units[x->prev].next = x->next;
	else
		t->lru_head = x->next;
	if (x->next >= 0)
		t->units[x->next].prev = x->prev;
	else
		t->lru_tail = x->prev;
	x->prev = x->next = -1;
}

static void lru_front(struct trace *t, int32_t u)
{
	struct unit *x = &t->units[u];
	x->prev = -1;
	x->next = t->lru_head;
	if (t->lru_head >= 0)
		t->units[t->lru_head].prev = u;
	t->lru_head = u;
	if (t->lru_tail < 0)
		t->lru_tail = u;
}

static int record(struct trace *t, uint64_t size, uint64_t handle, uint32_t count)
{
	if (!t->record)
		return 0;
	if (push((void **)&t->ops, &t->capops, t->nops, sizeof *t->ops))
		return -1;
	t->ops[t->nops++] = (struct op){ size, handle, count };
	return 0;
}

/* Frees the least recently used unit; -1 if there is none or free failed. */
static int evict_one(struct trace *t)
{
	int32_t u = t->lru_tail;
	if (u < 0)
		return -1;
	struct unit *x = &t->units[u];
	const struct doc *d = &t->docs[u / MAX_CHUNKS];
	uint32_t n = per_chunk(d);
	if (t->ideal) {
		t->ideal_used -= x->bytes;
	} else {
		uint64_t t0 = bench_now_ns();
		int r = l1_free_ids(t->a, x->ids, n);
		t->free_ns += bench_now_ns() - t0;
		if (r)
			return -1;
	}
	if (record(t, 0, x->handle, n))
		return -1;
	lru_unlink(t, u);
	free(x->ids);
	x->ids = NULL;
	t->evicted_units++;
	return 0;
}

static uint64_t used_now(struct trace *t)
{
	uint64_t used, total;
	if (t->ideal)
		return t->ideal_used;
	l1_get_memory_usage(t->a, &used, &total);
	return used;
}

static void evict_to_watermark(struct trace *t)
{
	if (used_now(t) <= t->high)
		return;
	while (used_now(t) > t->low && evict_one(t) == 0)
		;
}

/* ---- one request --------------------------------------------------------- */

/* Holds and releases every object of chunk c: 1 hit, 0 miss, -1 error. */
static int lookup(struct trace *t, const struct doc *d, uint32_t c, int expect)
{
	char key[L1_KEY_MAX + 1];
	struct l1_obj o;
	uint32_t n = expect ? per_chunk(d) : 1;
	if (t->ideal) {                 /* the trace knows what it stored */
		t->lookups += n;
		return expect ? 1 : 0;
	}
	uint64_t t0 = bench_now_ns();
	for (uint32_t i = 0; i < n; i++) {
		key_of(d, c, i, key, sizeof key);
		int r = l1_hold_key(t->a, key, &o);
		if (r == 0)
			r = l1_release(t->a, o.id);
		else if (r == -ENOENT && !expect)
			r = 1;
		t->lookups++;
		if (r < 0 || (r == 0) != !!expect) {
			t->lookup_ns += bench_now_ns() - t0;
			return -1;
		}
	}
	t->lookup_ns += bench_now_ns() - t0;
	return expect ? 1 : 0;
}

/* store() on a pool of bytes alone: an allocate fails only when the free
 * bytes, wherever they lie, are fewer than the batch's (whole blocks). */
static int store_ideal(struct trace *t, uint32_t di, uint32_t c0, uint32_t nch)
{
	const struct doc *d = &t->docs[di];
	uint32_t pc = per_chunk(d), count = nch * pc;
	struct l1_layout l;
	uint64_t b;
	chunk_layout(d, c0, &l);
	if (l1_layout_bytes(&l, &b))
		return -1;
	b = (b + t->block - 1) / t->block * t->block;
	while (t->ideal_used + b * count > t->total) {
		if (!t->evict) {
			t->first_oom_used = t->ideal_used;
			t->oom_largest = t->total - t->ideal_used;
			t->oom_count = count;
			t->oom_bytes = b;
			return 1;
		}
		t->forced++;
		if (evict_one(t))
			return -1;
	}
	t->ideal_used += b * count;
	t->objs_allocated += count;
	for (uint32_t k = 0; k < nch; k++) {
		struct unit *x = &t->units[di * MAX_CHUNKS + c0 + k];
		if (!(x->ids = calloc(pc, sizeof *x->ids)))
			return -1;
		x->bytes = b * pc;
		lru_front(t, (int32_t)(di * MAX_CHUNKS + c0 + k));
	}
	return 0;
}

/* Allocates count chunks c0.. (same layout), evicting on failure when the
 * trace evicts.  0, 1 on the first OOM without eviction, -1 on error. */
static int store(struct trace *t, uint32_t di, uint32_t c0, uint32_t nch)
{
	if (t->ideal)
		return store_ideal(t, di, c0, nch);
	const struct doc *d = &t->docs[di];
	uint32_t pc = per_chunk(d), count = nch * pc;
	struct l1_layout l;
	struct l1_obj objs[MAX_CHUNKS * 32];
	char key[L1_KEY_MAX + 1];
	int r;
	chunk_layout(d, c0, &l);
	for (;;) {
		uint64_t t0 = bench_now_ns();
		r = l1_alloc(t->a, &l, count, objs);
		uint64_t dt = bench_now_ns() - t0;
		t->alloc_ns += dt;
		if (push((void **)&t->lat, &t->caplat, t->nlat, sizeof *t->lat))
			return -1;
		t->lat[t->nlat++] = dt;
		if (r == 0) {
			if (push((void **)&t->lat_ok, &t->caplat_ok, t->nlat_ok, sizeof *t->lat_ok))
				return -1;
			t->lat_ok[t->nlat_ok++] = dt;
			break;
		}
		if (r != -ENOMEM && r != -ENOSPC)
			return -1;
		if (!t->evict) {
			struct l1_usage u;
			l1_arena_usage(t->a, &u);
			t->first_oom_used = u.used_bytes;
			t->oom_largest = u.largest_free_bytes;
			t->oom_dirty = u.dirty_bytes;
			t->oom_count = count;
			l1_layout_bytes(&l, &t->oom_bytes);
			return 1;
		}
		t->forced++;
		if (evict_one(t))
			return -1;
	}
	t->objs_allocated += count;
	if (t->fill) {
		uint64_t f0 = bench_now_ns();
		for (uint32_t i = 0; i < count; i++)
			memset(objs[i].ptr, 0x5a, objs[i].data_size);
		t->fill_ns += bench_now_ns() - f0;
	}
	if (record(t, objs[0].size, t->handles, count))
		return -1;
	for (uint32_t k = 0; k < nch; k++) {
		struct unit *x = &t->units[di * MAX_CHUNKS + c0 + k];
		if (!(x->ids = malloc(pc * sizeof *x->ids)))
			return -1;
		x->bytes = 0;
		x->handle = t->handles + (uint64_t)k * pc;
		for (uint32_t i = 0; i < pc; i++) {
			struct l1_obj *o = &objs[k * pc + i];
			key_of(d, c0 + k, i, key, sizeof key);
			if ((r = l1_publish(t->a, o->id, key)))
				return -1;
			x->ids[i] = o->id;
			x->bytes += o->size;
		}
		lru_front(t, (int32_t)(di * MAX_CHUNKS + c0 + k));
	}
	t->handles += count;
	return 0;
}

/* One request: 0, 1 on the first OOM (no eviction), -1 on error. */
static int request(struct trace *t, uint32_t di)
{
	const struct doc *d = &t->docs[di];
	struct unit *u = &t->units[di * MAX_CHUNKS];
	uint32_t c = 0;
	for (; c < d->nchunks && u[c].ids; c++) {       /* retrieve the cached prefix */
		if (lookup(t, d, c, 1) < 0)
			return -1;
		lru_unlink(t, (int32_t)(di * MAX_CHUNKS + c));
		lru_front(t, (int32_t)(di * MAX_CHUNKS + c));
		t->hits++;
	}
	if (c < d->nchunks) {
		if (lookup(t, d, c, 0) < 0)             /* the miss, seen by the pool */
			return -1;
		t->misses++;
	}
	while (c < d->nchunks) {                        /* store the rest */
		if (u[c].ids) {
			c++;
			continue;
		}
		uint32_t n = 1;
		if (c + 1 < d->nchunks)                 /* full chunks, one batch */
			while (c + n + 1 < d->nchunks && !u[c + n].ids)
				n++;
		int r = store(t, di, c, n);
		if (r)
			return r;
		c += n;
	}
	if (t->evict)
		evict_to_watermark(t);
	return 0;
}

static int trace_init(struct trace *t, struct l1_arena *a, uint32_t ndocs)
{
	memset(t, 0, sizeof *t);
	t->a = a;
	t->ndocs = ndocs;
	t->rng = 0x4b56ull;
	t->lru_head = t->lru_tail = -1;
	t->docs = calloc(ndocs, sizeof *t->docs);
	t->cdf = calloc(ndocs, sizeof *t->cdf);
	t->units = calloc((size_t)ndocs * MAX_CHUNKS, sizeof *t->units);
	if (!t->docs || !t->cdf || !t->units)
		return -1;
	for (uint64_t i = 0; i < (uint64_t)ndocs * MAX_CHUNKS; i++)
		t->units[i].prev = t->units[i].next = -1;
	make_docs(t, ndocs);
	uint64_t used;
	l1_get_memory_usage(a, &used, &t->total);
	t->high = (uint64_t)(0.8 * (double)t->total);
	t->low = (uint64_t)(0.7 * (double)t->total);
	return 0;
}

static void trace_free(struct trace *t)
{
	for (uint64_t i = 0; t->units && i < (uint64_t)t->ndocs * MAX_CHUNKS; i++)
		free(t->units[i].ids);
	free(t->units);
	free(t->docs);
	free(t->cdf);
	free(t->lat);
	free(t->lat_ok);
	free(t->ops);
}

/* Stores requests (no eviction) until the first OOM: utilisation, or -1. */
static double fill_to_oom(struct trace *t, uint64_t max_requests)
{
	t->evict = 0;
	for (uint64_t i = 0; i < max_requests; i++) {
		int r = request(t, pick_doc(t));
		if (r < 0)
			return -1;
		if (r == 1)
			return (double)t->first_oom_used / (double)t->total;
	}
	return -1;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

static double pct(uint64_t *v, uint64_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof *v, cmp_u64);
	uint64_t i = (uint64_t)(p * (double)(n - 1) + 0.5);
	return (double)v[i];
}

/* ---- the glibc replay ---------------------------------------------------- */

struct replay {
	double allocs_per_s, p50, p99, p999, store_us;
};

/* fill: write every block after malloc, as the pool pass did (untimed in
 * allocations/s, timed in store_us: allocate + fill + free per object). */
static int replay_glibc(const struct trace *t, int fill, struct replay *out)
{
	void **h = calloc(t->handles ? t->handles : 1, sizeof *h);
	uint64_t *lat = malloc((t->nops ? t->nops : 1) * sizeof *lat), nlat = 0, objs = 0;
	uint64_t busy = 0, fill_ns = 0;
	if (!h || !lat) {
		free(h);
		free(lat);
		return -1;
	}
	for (uint64_t i = 0; i < t->nops; i++) {
		const struct op *o = &t->ops[i];
		uint64_t t0 = bench_now_ns();
		if (o->size) {
			for (uint32_t k = 0; k < o->count; k++)
				if (!(h[o->handle + k] = malloc(o->size)))
					goto fail;
		} else {
			for (uint32_t k = 0; k < o->count; k++) {
				free(h[o->handle + k]);
				h[o->handle + k] = NULL;
			}
		}
		uint64_t dt = bench_now_ns() - t0;
		busy += dt;
		if (o->size) {
			lat[nlat++] = dt;
			objs += o->count;
		}
		if (o->size && fill) {
			uint64_t f0 = bench_now_ns();
			for (uint32_t k = 0; k < o->count; k++)
				memset(h[o->handle + k], 0x5a, o->size);
			fill_ns += bench_now_ns() - f0;
		}
	}
	for (uint64_t i = 0; i < t->handles; i++)       /* what the trace still held */
		free(h[i]);
	out->allocs_per_s = busy ? (double)objs / ((double)busy / 1e9) : 0;
	out->store_us = objs ? (double)(busy + fill_ns) / 1e3 / (double)objs : 0;
	out->p50 = pct(lat, nlat, 0.50);
	out->p99 = pct(lat, nlat, 0.99);
	out->p999 = pct(lat, nlat, 0.999);
	free(h);
	free(lat);
	return 0;
fail:
	for (uint64_t i = 0; i < t->handles; i++)
		free(h[i]);
	free(h);
	free(lat);
	return -1;
}

/* ---- the scenario -------------------------------------------------------- */

struct kv_result {
	double util_fresh, util_churn, allocs_s, p50, p99, p999, wall, hit, lookups_s, store_us;
	uint64_t nlat, objs, evicted, forced, oom_count, oom_bytes, oom_free, oom_largest, oom_dirty;
	struct l1_zero_split zs;
	int problems;
};

/* One pass: fill a fresh pool to its first OOM, run the trace with eviction
 * on another (recorded when rec is given, for the glibc replay), then fill
 * that one to its first OOM.  0, or 1 with a note. */
static int kv_pass(const struct bench_ctx *c, uint64_t size, uint64_t nreq, uint32_t ndocs,
		   int zero_on_free, int fill, struct trace *rec, struct kv_result *o)
{
	struct trace t;
	struct l1_arena *a;
	memset(o, 0, sizeof *o);
	if (!fill) {            /* the filled pass measures the store, not packing */
		if (!(a = bench_create(c, SCEN, size, 0, zero_on_free)))
			return 1;
		if (trace_init(&t, a, ndocs))
			goto fail;
		o->util_fresh = fill_to_oom(&t, 1000000);
		trace_free(&t);
		bench_destroy(a);
	}
	if (!(a = bench_create(c, SCEN, size, 0, zero_on_free)))
		return 1;
	if (trace_init(&t, a, ndocs))
		goto fail;
	t.fill = fill;
	t.evict = 1;
	t.record = rec != NULL;
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < nreq; i++)
		if (request(&t, pick_doc(&t)) < 0) {
			bench_note(c, SCEN, "the trace failed at request %llu: %s",
				   (unsigned long long)i, l1_last_error());
			goto fail;
		}
	o->wall = (double)(bench_now_ns() - t0) / 1e9;
	o->nlat = t.nlat;
	double busy = (double)(t.alloc_ns + t.free_ns) / 1e9;
	o->allocs_s = busy > 0 ? (double)t.objs_allocated / busy : 0;
	o->store_us = t.objs_allocated ? (double)(t.alloc_ns + t.free_ns + t.fill_ns) / 1e3 /
					 (double)t.objs_allocated : 0;
	o->p50 = pct(t.lat, t.nlat, 0.50);
	o->p99 = pct(t.lat, t.nlat, 0.99);
	o->p999 = pct(t.lat, t.nlat, 0.999);
	o->hit = t.hits + t.misses ? (double)t.hits / (double)(t.hits + t.misses) : 0;
	o->lookups_s = t.lookup_ns ? (double)t.lookups / ((double)t.lookup_ns / 1e9) : 0;
	o->objs = t.objs_allocated;
	o->evicted = t.evicted_units;
	o->forced = t.forced;
	l1_arena_zero_split(a, &o->zs);

	t.record = 0;
	t.nlat = 0;
	t.fill = 0;
	o->util_churn = fill ? 0 : fill_to_oom(&t, 1000000);
	char rep[4096];
	o->problems = l1_arena_memcheck(a, 0, rep, sizeof rep);
	o->oom_count = t.oom_count;
	o->oom_bytes = t.oom_bytes;
	o->oom_free = t.total - t.first_oom_used;
	o->oom_largest = t.oom_largest;
	o->oom_dirty = t.oom_dirty;
	if (rec) {
		*rec = t;               /* the caller replays and frees it */
		bench_destroy(a);
		return 0;
	}
	trace_free(&t);
	bench_destroy(a);
	return 0;
fail:
	bench_note(c, SCEN, "failed: %s", l1_last_error());
	trace_free(&t);
	bench_destroy(a);
	return 1;
}

/* ---- what zeroing can do on this machine --------------------------------- */

#define MSET_BYTES (256ull << 20)         /* per thread: well past any L3 */
#define MSET_ROUNDS 4

static void *mset_thread(void *arg)
{
	uint64_t *ns = arg;
	char *p = malloc(MSET_BYTES);
	if (!p) {
		*ns = 0;
		return NULL;
	}
	memset(p, 1, MSET_BYTES);               /* faulted in before the clock */
	uint64_t t0 = bench_now_ns();
	for (int r = 0; r < MSET_ROUNDS; r++) {
		memset(p, 0, MSET_BYTES);
		__asm__ __volatile__("" : : "r"(p) : "memory");
	}
	*ns = bench_now_ns() - t0;
	free(p);
	return NULL;
}

/* Bytes/s that memset clears with one thread on every online CPU at once:
 * the most any zeroing, by whichever threads, could clear here. */
static double memset_all_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if (n > 256)
		n = 256;
	pthread_t th[256];
	uint64_t ns[256];
	long started = 0;
	for (; started < n; started++)
		if (pthread_create(&th[started], NULL, mset_thread, &ns[started]))
			break;
	double bps = 0;
	for (long i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		if (ns[i])
			bps += (double)(MSET_BYTES * MSET_ROUNDS) / ((double)ns[i] / 1e9);
	}
	return bps;
}

/* The same passes as kv_pass's fills on a pool of bytes alone (no
 * placement: an allocate fails only when too few bytes are free anywhere):
 * what a pool that never fragments reaches at the first OOM, fresh and
 * after the same churn.  Fresh, the requests are the pool's up to its first
 * OOM, so no placement passes it; after the churn it is a reference, not a
 * bound: a pool that fails an allocate evicts on it (as LMCache does), and
 * from then on its requests and evictions are not these.  The pool is
 * created, lazy (nothing committed), for its size and block only. */
static int kv_ideal(const struct bench_ctx *c, uint64_t size, uint64_t nreq, uint32_t ndocs,
		    struct kv_result *o)
{
	struct l1_arena *a = bench_create(c, SCEN, size, 1, 0);
	struct l1_usage u;
	struct trace t;
	int rc = 1;
	if (!a)
		return 1;
	if (l1_arena_usage(a, &u))
		goto out;
	for (int churn = 0; churn < 2; churn++) {
		if (trace_init(&t, a, ndocs))
			goto fail;      /* trace_init cleared t first */
		t.ideal = 1;
		t.block = u.align_bytes;
		t.evict = 1;
		for (uint64_t i = 0; churn && i < nreq; i++)
			if (request(&t, pick_doc(&t)) < 0)
				goto fail;
		double util = fill_to_oom(&t, 1000000);
		if (churn)
			o->util_churn = util;
		else
			o->util_fresh = util;
		o->oom_count = t.oom_count;
		o->oom_bytes = t.oom_bytes;
		o->oom_free = t.total - t.first_oom_used;
		trace_free(&t);
	}
	rc = 0;
	goto out;
fail:
	trace_free(&t);
out:
	bench_destroy(a);
	return rc;
}

static void kv_ideal_note(const struct bench_ctx *c, const struct kv_result *ideal)
{
	bench_note(c, SCEN, "bytes alone: the same trace on a pool where an allocate fails only "
		   "when fewer bytes are free than it asks for, wherever they lie (a pool that "
		   "never fragments); after the churn its first OOM was an allocate of %u x %.1f "
		   "MiB with %.1f MiB free", (unsigned)ideal->oom_count,
		   (double)ideal->oom_bytes / 1048576.0, (double)ideal->oom_free / 1048576.0);
}

/* Of all the bytes zeroed, the share part of them. */
static double zshare(const struct l1_zero_split *z, uint64_t part)
{
	double all = (double)(z->by_allocate + z->by_free + z->by_engine);
	return all ? (double)part / all : 0;
}

static void kv_report(const struct bench_ctx *c, const char *tag, const struct kv_result *r,
		      const struct replay *g, const struct kv_result *ideal)
{
	char m[96];
	snprintf(m, sizeof m, "allocations/s, %s", tag);
	bench_report(c, SCEN, m, r->allocs_s, "obj/s", "glibc malloc, same trace",
		     g->allocs_per_s, ">= 0.5x glibc", r->allocs_s >= 0.5 * g->allocs_per_s);
	snprintf(m, sizeof m, "allocate p50, %s", tag);
	bench_report(c, SCEN, m, r->p50 / 1e3, "us", "glibc malloc, same batches",
		     g->p50 / 1e3, NULL, -1);
	snprintf(m, sizeof m, "allocate p99, %s", tag);
	bench_report(c, SCEN, m, r->p99 / 1e3, "us", "glibc malloc, same batches",
		     g->p99 / 1e3, "<= glibc", r->p99 <= g->p99);
	snprintf(m, sizeof m, "allocate p999, %s", tag);
	bench_report(c, SCEN, m, r->p999 / 1e3, "us", "glibc malloc, same batches",
		     g->p999 / 1e3, "<= 2000 us", r->p999 <= 2e6);
	snprintf(m, sizeof m, "utilisation at first OOM, fresh, %s", tag);
	bench_report(c, SCEN, m, r->util_fresh, "", "bytes alone, same trace",
		     ideal->util_fresh, ">= 0.97", r->util_fresh >= 0.97);
	snprintf(m, sizeof m, "utilisation at first OOM, churned, %s", tag);
	bench_report(c, SCEN, m, r->util_churn, "", "bytes alone, same trace",
		     ideal->util_churn, ">= 0.97", r->util_churn >= 0.97);
	snprintf(m, sizeof m, "memcheck problems after the trace, %s", tag);
	bench_report(c, SCEN, m, r->problems, "", NULL, 0, "0", r->problems == 0);
	bench_note(c, SCEN, "%s: %llu allocate calls for %llu objects, %llu chunks evicted "
		   "(%llu on a failed allocate), %.1f s; after the churn the first OOM was an "
		   "allocate of %u x %.1f MiB with %.1f MiB free (%.1f MiB of it not yet zeroed), "
		   "the largest free run %.1f MiB",
		   tag, (unsigned long long)r->nlat, (unsigned long long)r->objs,
		   (unsigned long long)r->evicted, (unsigned long long)r->forced, r->wall,
		   (unsigned)r->oom_count, (double)r->oom_bytes / 1048576.0,
		   (double)r->oom_free / 1048576.0, (double)r->oom_dirty / 1048576.0,
		   (double)r->oom_largest / 1048576.0);
}

/* The filled pass: a store's path, allocate + write + free, beside glibc
 * replaying the same sequence with the same writes.  memset_engine: the
 * engine zeroes with memset on its thread instead of io_uring reads of
 * /dev/zero (L1ARENA_ZERO=memset), for the comparison. */
static int kv_filled(const struct bench_ctx *c, uint64_t size, uint64_t nreq, uint32_t ndocs,
		     int memset_engine)
{
	struct kv_result f;
	struct trace t;
	struct replay g;
	char m[128];
	const char *how = memset_engine ? "memset engine" : "io_uring engine";
	const char *old = getenv("L1ARENA_ZERO");
	char *keep = old ? strdup(old) : NULL;
	memset(&t, 0, sizeof t);
	if (memset_engine)
		setenv("L1ARENA_ZERO", "memset", 1);
	int r = kv_pass(c, size, nreq, ndocs, 1, 1, &t, &f);
	if (keep)
		setenv("L1ARENA_ZERO", keep, 1);
	else
		unsetenv("L1ARENA_ZERO");
	free(keep);
	if (r)
		return 1;
	r = replay_glibc(&t, 1, &g);
	trace_free(&t);
	if (r) {
		bench_note(c, SCEN, "the filled glibc replay ran out of memory");
		return 1;
	}
	snprintf(m, sizeof m, "allocations/s, objects filled, %s", how);
	bench_report(c, SCEN, m, f.allocs_s, "obj/s", "glibc malloc, same trace, same fill",
		     g.allocs_per_s, ">= 0.5x glibc", f.allocs_s >= 0.5 * g.allocs_per_s);
	snprintf(m, sizeof m, "allocate p99, objects filled, %s", how);
	bench_report(c, SCEN, m, f.p99 / 1e3, "us", "glibc malloc, same batches, same fill",
		     g.p99 / 1e3, "<= glibc", f.p99 <= g.p99);
	snprintf(m, sizeof m, "allocate p999, objects filled, %s", how);
	bench_report(c, SCEN, m, f.p999 / 1e3, "us", "glibc malloc, same batches, same fill",
		     g.p999 / 1e3, "<= 2000 us", f.p999 <= 2e6);
	snprintf(m, sizeof m, "store: allocate+fill+free per object, %s", how);
	bench_report(c, SCEN, m, f.store_us, "us", "glibc malloc, same trace, same fill",
		     g.store_us, NULL, -1);
	const struct l1_zero_split *z = &f.zs;
	snprintf(m, sizeof m, "zeroed by allocate / free / engine, filled, %s", how);
	bench_note(c, SCEN, "%s: %.3f / %.3f / %.3f", m, zshare(z, z->by_allocate),
		   zshare(z, z->by_free), zshare(z, z->by_engine));
	bench_note(c, SCEN, "objects filled: every object's bytes written after allocate, as a "
		   "store writes the KV it copied from the GPU (glibc: the same bytes of each "
		   "malloc'd block); allocations/s still over the time in allocate+free; %llu "
		   "objects, %.1f s", (unsigned long long)f.objs, f.wall);
	return f.problems != 0;
}

int bench_kv(const struct bench_ctx *c)
{
	uint64_t size = c->quick ? 512ull << 20 : 2ull << 30;
	uint64_t nreq = c->iters ? c->iters : c->quick ? 1500 : 20000;
	uint32_t ndocs = c->quick ? 300 : 1000;
	const char *only = getenv("L1BENCH_KV_ONLY");   /* "on", "off", "filled", "ideal": one pass */
	struct kv_result on, off, ideal;
	struct trace t;
	struct replay g;
	int rc = 1;

	memset(&t, 0, sizeof t);
	if (only && !strcmp(only, "filled"))
		return kv_filled(c, size, nreq, ndocs, 0) | kv_filled(c, size, nreq, ndocs, 1);
	if (kv_ideal(c, size, nreq, ndocs, &ideal))
		return 1;
	if (only && !strcmp(only, "ideal")) {
		bench_report(c, SCEN, "utilisation at first OOM, fresh, bytes alone",
			     ideal.util_fresh, "", NULL, 0, NULL, -1);
		bench_report(c, SCEN, "utilisation at first OOM, churned, bytes alone",
			     ideal.util_churn, "", NULL, 0, NULL, -1);
		kv_ideal_note(c, &ideal);
		return 0;
	}
	if (!(only && !strcmp(only, "off")) &&
	    kv_pass(c, size, nreq, ndocs, 1, 0, &t, &on))
		return 1;
	if (!(only && !strcmp(only, "on")) && kv_pass(c, size, nreq, ndocs, 0, 0,
						    t.ops ? NULL : &t, &off))
		goto out;
	mallopt(M_TRIM_THRESHOLD, 1 << 30);     /* as in alloc: measure malloc, not munmap */
	if (replay_glibc(&t, 0, &g)) {
		bench_note(c, SCEN, "the glibc replay ran out of memory");
		goto out;
	}
	bench_note(c, SCEN, "%llu MiB pool, %llu requests over %u documents (Zipf 1.0); "
		   "allocations/s over the time in allocate+free", (unsigned long long)(size >> 20),
		   (unsigned long long)nreq, ndocs);
	if (!(only && !strcmp(only, "off"))) {
		kv_report(c, "zeroing on", &on, &g, &ideal);
		const struct l1_zero_split *z = &on.zs;
		double all = (double)(z->by_allocate + z->by_free + z->by_engine);
		bench_report(c, SCEN, "share of zeroed bytes: allocating threads",
			     zshare(z, z->by_allocate), "", NULL, 0, NULL, -1);
		bench_report(c, SCEN, "share of zeroed bytes: freeing threads (small)",
			     zshare(z, z->by_free), "", NULL, 0, NULL, -1);
		bench_report(c, SCEN, "share of zeroed bytes: engine",
			     zshare(z, z->by_engine), "", NULL, 0, NULL, -1);
		/* allocations/s with zeroing on cannot pass bandwidth / bytes per
		 * object: what 0.5x glibc would take, beside what this machine has */
		double per_obj = on.objs ? all / (double)on.objs : 0, zero_bps = memset_all_cpus();
		bench_report(c, SCEN, "zeroing that 0.5x glibc's allocations/s takes",
			     0.5 * g.allocs_per_s * per_obj / 1e9, "GB/s",
			     "memset, one thread on every CPU", zero_bps / 1e9, NULL, -1);
		bench_note(c, SCEN, "zeroing on: %.2f MiB zeroed per object allocated; memset on "
			   "every CPU at once clears %.0f objects' worth a second", per_obj / 1048576.0,
			   per_obj > 0 ? zero_bps / per_obj : 0);
		bench_report(c, SCEN, "hit ratio (chunks, Zipf 1.0)", on.hit, "", NULL, 0, NULL, -1);
		bench_report(c, SCEN, "lookups/s (hold_key+release)", on.lookups_s, "obj/s", NULL,
			     0, NULL, -1);
		rc = on.util_fresh < 0 || on.util_churn < 0 || on.problems;
	} else
		rc = 0;
	if (!(only && !strcmp(only, "on"))) {
		kv_report(c, "zeroing off", &off, &g, &ideal);
		rc |= off.util_fresh < 0 || off.util_churn < 0 || off.problems;
	}
	kv_ideal_note(c, &ideal);
	bench_note(c, SCEN, "zeroing on: an allocate that finds no clean run zeroes the dirty "
		   "bytes of the run it takes itself (allocating threads); the rest is zeroed by "
		   "the engine in the background, small extents by the freeing thread");
	if (!only)
		rc |= kv_filled(c, size, nreq, ndocs, 0) | kv_filled(c, size, nreq, ndocs, 1);
out:
	trace_free(&t);
	return rc;
}
