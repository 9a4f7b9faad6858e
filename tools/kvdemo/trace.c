/*
 * trace.c - the KV-cache trace of the demo: which model a request is for,
 * how many 256-token chunks it has, the layouts and LMCache-style keys of its
 * objects, and the byte pattern each object holds.  Pure functions of (run,
 * writer, request, index): a reader recomputes everything a writer did, so
 * the processes need no shared table of what was written.
 *
 * Layouts follow LMCache: a chunk of T tokens of a model with L layers and
 * H KV heads of dimension D is one fp16 object [2, L, T, H*D] (its "KV_2LTD"
 * format, all layers of the chunk together), or, for models stored layer by
 * layer (LMCache's layerwise mode), L objects [2, T, H*D].  The last chunk of
 * a prompt is partial (T < 256), as in LMCache, rounded up to whole vLLM
 * blocks of 16 tokens: the pool interns each distinct layout in a table of
 * 1024 entries that is never emptied, and every token count of 4 models
 * would fill it.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kvdemo.h"

/* name, layers, kv heads, head dim, layerwise, max chunks, weight % */
const struct kv_model kv_models[] = {
	{ "meta-llama/Meta-Llama-3-8B", 32, 8, 128, 0, 3, 30 },    /* 32 MiB per chunk */
	{ "mistralai/Mistral-7B-v0.1", 32, 8, 128, 1, 3, 20 },     /* 32 x 1 MiB */
	{ "Qwen/Qwen2-0.5B", 24, 2, 64, 0, 8, 25 },                /* 3 MiB */
	{ "TinyLlama/TinyLlama-1.1B-Chat-v1.0", 22, 4, 64, 0, 6, 25 }, /* 5.5 MiB */
};
const unsigned kv_nmodels = sizeof kv_models / sizeof kv_models[0];

#define GOLDEN 0x9e3779b97f4a7c15ull

uint64_t kv_mix(uint64_t x)
{
	x += GOLDEN;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t req_hash(uint64_t run, uint32_t w, uint64_t r)
{
	return kv_mix(run ^ kv_mix(((uint64_t)w << 48) ^ r));
}

void kv_request_of(uint64_t run, uint32_t w, uint64_t r, struct kv_request *q)
{
	uint64_t h = req_hash(run, w, r);
	unsigned pick = (unsigned)(h % 100), acc = 0, i;
	for (i = 0; i + 1 < kv_nmodels; i++) {
		acc += kv_models[i].weight;
		if (pick < acc)
			break;
	}
	q->m = &kv_models[i];
	q->nchunks = 1 + (uint32_t)((h >> 8) % q->m->max_chunks);
	q->last_tokens = KV_BLOCK_TOKENS * (1 + (uint32_t)((h >> 24) %
							  (KV_CHUNK_TOKENS / KV_BLOCK_TOKENS)));
}

uint32_t kv_request_objects(const struct kv_request *q)
{
	return q->nchunks * (q->m->layerwise ? q->m->layers : 1);
}

void kv_object_of(uint64_t run, uint32_t w, uint64_t r, const struct kv_request *q,
		  uint32_t i, struct kv_object *o)
{
	const struct kv_model *m = q->m;
	uint32_t c = m->layerwise ? i / m->layers : i;
	uint32_t layer = m->layerwise ? i % m->layers : 0;
	uint64_t tokens = c + 1 == q->nchunks ? q->last_tokens : KV_CHUNK_TOKENS;
	uint64_t width = (uint64_t)m->kv_heads * m->head_dim;

	/* a prefix hash, like LMCache's: chunk c's depends on chunks 0..c */
	uint64_t h = req_hash(run, w, r);
	for (uint32_t k = 0; k <= c; k++)
		h = kv_mix(h ^ ((uint64_t)k * GOLDEN));
	if (m->layerwise)
		snprintf(o->key, sizeof o->key, "vllm@%s@1@0@%016llx@%u", m->name,
			 (unsigned long long)h, layer);
	else
		snprintf(o->key, sizeof o->key, "vllm@%s@1@0@%016llx", m->name,
			 (unsigned long long)h);

	memset(&o->layout, 0, sizeof o->layout);
	o->layout.ntensors = 1;
	struct l1_tensor *t = &o->layout.t[0];
	t->dtype = L1_DTYPE_FP16;
	if (m->layerwise) {
		t->ndim = 3;
		t->shape[0] = 2;
		t->shape[1] = tokens;
		t->shape[2] = width;
	} else {
		t->ndim = 4;
		t->shape[0] = 2;
		t->shape[1] = m->layers;
		t->shape[2] = tokens;
		t->shape[3] = width;
	}
	o->bytes = 2 * (m->layerwise ? 1 : m->layers) * tokens * width * 2;
	o->seed = kv_mix(h ^ ((uint64_t)(layer + 1) << 32));
}

uint64_t kv_max_object_bytes(void)
{
	uint64_t max = 0;
	for (unsigned i = 0; i < kv_nmodels; i++) {
		const struct kv_model *m = &kv_models[i];
		uint64_t b = 2ull * (m->layerwise ? 1 : m->layers) * KV_CHUNK_TOKENS *
			     m->kv_heads * m->head_dim * 2;
		if (b > max)
			max = b;
	}
	return max;
}

void kv_fill(void *p, uint64_t bytes, uint64_t seed)
{
	uint64_t *w = p, n = bytes / 8;
	for (uint64_t i = 0; i < n; i++)
		w[i] = seed + i * GOLDEN;
	uint64_t tail = seed + n * GOLDEN;
	memcpy((char *)p + n * 8, &tail, bytes % 8);
}

uint64_t kv_verify(const void *p, uint64_t bytes, uint64_t seed)
{
	const uint64_t *w = p;
	uint64_t n = bytes / 8, bad = 0;
	/* branch-free inner blocks, so the check runs at memory speed */
	for (uint64_t i = 0; i < n; i += 512) {
		uint64_t end = i + 512 < n ? i + 512 : n;
		for (uint64_t j = i; j < end; j++)
			bad |= w[j] ^ (seed + j * GOLDEN);
		if (bad) {
			for (uint64_t j = i; j < end; j++)
				if (w[j] != seed + j * GOLDEN)
					return j * 8 + 1;
		}
	}
	uint64_t tail = seed + n * GOLDEN;
	if (bytes % 8 && memcmp((const char *)p + n * 8, &tail, bytes % 8))
		return n * 8 + 1;
	return 0;
}


uint64_t kv_zipf(uint64_t n, double s, double u)
{
	/* inverse CDF of the continuous power law on [1, n+1) */
	double x;
	if (n <= 1)
		return 0;
	if (fabs(s - 1.0) < 1e-9)
		x = pow((double)n + 1, u);
	else
		x = pow(1.0 + u * (pow((double)n + 1, 1.0 - s) - 1.0), 1.0 / (1.0 - s));
	uint64_t k = (uint64_t)x;
	k = k ? k - 1 : 0;
	return k < n ? k : n - 1;
}
