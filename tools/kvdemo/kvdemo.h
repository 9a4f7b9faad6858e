/*
 * kvdemo.h - the KV-cache workload that `make run` drives: writer processes
 * allocate KV chunks by layout (the shapes LMCache stores for real models),
 * fill them with a pattern derived from their key, and publish them; reader
 * processes find them again by key (l1_hold_key), by path through the l1fs
 * view (open + mmap or read) and zero-copy by path (l1_open_path), and check
 * every byte; an evictor frees the oldest published objects whenever usage
 * passes the watermark, so the pool runs full without an allocation failing.
 *
 * Everything a reader needs to check an object follows from four numbers:
 * the run's nonce, the writer, the request and the object's index in it
 * (trace.c), so readers and writers share nothing but one page of counters
 * (struct kv_stats, MAP_SHARED anonymous, written with atomics only).
 */
#ifndef KVDEMO_H
#define KVDEMO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "l1arena.h"

#define KV_MAX_WRITERS 16
#define KV_MAX_READERS 16
#define KV_CHUNK_TOKENS 256             /* LMCache's default chunk_size */
#define KV_BLOCK_TOKENS 16              /* vLLM's block: partial chunks round up */

/* A model's KV geometry and how its chunks are stored. */
struct kv_model {
	const char *name;               /* as it appears in LMCache keys */
	uint32_t layers, kv_heads, head_dim;
	uint32_t layerwise;             /* 1: one [2,T,H*D] object per layer */
	uint32_t max_chunks;            /* chunks per request, at most */
	uint32_t weight;                /* share of requests, in percent */
};

extern const struct kv_model kv_models[];
extern const unsigned kv_nmodels;

/* One request of one writer: a prompt of nchunks chunks, the last one
 * partial (last_tokens <= 256, whole 16-token blocks), as LMCache stores a
 * prefix. */
struct kv_request {
	const struct kv_model *m;
	uint32_t nchunks;
	uint32_t last_tokens;
};

/* One object of a request: its key, layout and fill pattern. */
struct kv_object {
	char key[L1_KEY_MAX + 1];
	struct l1_layout layout;
	uint64_t bytes;                 /* the layout's bytes */
	uint64_t seed;                  /* of the fill pattern */
};

void kv_request_of(uint64_t run, uint32_t w, uint64_t r, struct kv_request *q);
/* Objects in a request: nchunks, times layers when stored layer by layer. */
uint32_t kv_request_objects(const struct kv_request *q);
/* Object i of a request (objects of one chunk are consecutive). */
void kv_object_of(uint64_t run, uint32_t w, uint64_t r, const struct kv_request *q,
		  uint32_t i, struct kv_object *o);
/* Bytes of the largest object any model stores. */
uint64_t kv_max_object_bytes(void);

/* The pattern: word i of an object is seed + i * golden; any byte written to
 * the wrong object or offset shows. */
void kv_fill(void *p, uint64_t bytes, uint64_t seed);
/* 0 if p holds the pattern, else the byte offset of the first bad word + 1. */
uint64_t kv_verify(const void *p, uint64_t bytes, uint64_t seed);

/* The name of a key's entry in the view's keys/ directory (l1fs's rule:
 * bytes 0x21..0x7e stay except '/', '%' and a leading '@', the rest become
 * %XX; '@' + hex when that is over 255 bytes).  Returns its length. */

/* A Zipf-distributed rank in [0, n) with exponent s (rank 0 the hottest). */
uint64_t kv_zipf(uint64_t n, double s, double u);
uint64_t kv_mix(uint64_t x);

/* ---- the processes ----------------------------------------------------- */

struct kv_stats {
	_Atomic int stop;
	_Atomic uint64_t requests[KV_MAX_WRITERS];      /* published requests per writer */
	_Atomic uint64_t objs_written, bytes_written, alloc_calls, alloc_ns, alloc_waits;
	_Atomic uint64_t alloc_hist[32];        /* allocate calls by log2(us) */
	_Atomic uint64_t rd_key, rd_view_mmap, rd_view_read, rd_zc, rd_bytes, rd_miss;
	_Atomic uint64_t ev_passes, ev_objs, ev_bytes, ev_pressure;
	_Atomic uint64_t want_room;     /* bytes a writer found no room for */
	_Atomic uint64_t errors;
	_Atomic int err_claimed;
	char first_error[512];
};

struct kv_opts {
	const char *arena;              /* pool path (NULL: the library's default) */
	const char *view;               /* l1fs mount, or NULL */
	double seconds, watermark, low, interval, zipf_s;
	double write_rate;              /* MiB/s per writer; 0 = as fast as it can */
	int writers, readers;
	uint64_t run;                   /* nonce: keys differ from run to run */
};

/* Records an error (the first one's sentence is kept) and asks all to stop. */
void kv_error(struct kv_stats *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
uint64_t kv_now_ns(void);

/* Each runs until s->stop; returns the process exit status. */
int kv_writer(const struct kv_opts *o, struct kv_stats *s, int w);
int kv_reader(const struct kv_opts *o, struct kv_stats *s, int r);
int kv_evictor(const struct kv_opts *o, struct kv_stats *s);

/* Attaches a worker's own handle (no pinning); prints why not on failure. */
struct l1_arena *kv_attach(const struct kv_opts *o, struct kv_stats *s, const char *who);

#endif
