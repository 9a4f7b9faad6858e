/*
 * bench.h - l1bench's scenario interface.  main.c parses options, prints the
 * machine header, and runs scenarios by name; each scenario lives in its own
 * bench_<name>.c, measures our figure and its baseline in the same run, and
 * reports each with bench_report() (a table row for people, or one JSON
 * object per line with --json).  Scenarios declared here but not linked are
 * reported as "not built" (weak symbols), so files can land one at a time.
 */
#ifndef L1_BENCH_H
#define L1_BENCH_H

#include <stdint.h>
#include "l1arena.h"

struct bench_ctx {
	int json;                       /* --json */
	int quick;                      /* --quick: small sizes for CI smoke runs */
	const char *dir;                /* --dir: where pools go (hugetlbfs mount) */
	int allow_shm;                  /* --allow-shm */
	uint64_t iters;                 /* --iters (0 = scenario default) */
	const char *view;               /* --mount: an l1fs mount (view scenario) */
};

/* One measured figure.  baseline_name/baseline may be NULL/0 when the figure
 * has none; goal is a short sentence ("<= 150 ns"), met is 1/0/-1 (n/a). */
void bench_report(const struct bench_ctx *c, const char *scenario,
		  const char *metric, double value, const char *unit,
		  const char *baseline_name, double baseline, const char *goal,
		  int met);
/* A note line (machine facts, skips): printed as "# ..." or {"note":...}. */
void bench_note(const struct bench_ctx *c, const char *scenario, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A pool path under c->dir for this scenario (unique per pid). */
const char *bench_pool_path(const struct bench_ctx *c, const char *name, char *buf,
			    unsigned len);
/* Creates a pool for a scenario; prints a sentence and returns NULL on failure. */
struct l1_arena *bench_create(const struct bench_ctx *c, const char *name,
			      uint64_t size, int lazy, int zero_on_free);
/* The same with room for max_objects records (0: the default, one per
 * 64 KiB of pool). */
struct l1_arena *bench_create_objs(const struct bench_ctx *c, const char *name,
				   uint64_t size, int lazy, int zero_on_free,
				   uint64_t max_objects);
void bench_destroy(struct l1_arena *a);
uint64_t bench_now_ns(void);
uint64_t bench_thread_cpu_ns(void);
uint64_t bench_process_cpu_ns(void);

typedef int (*bench_fn)(const struct bench_ctx *c);
/* Scenarios; each returns 0, or non-zero when it could not run. */
int bench_alloc(const struct bench_ctx *c) __attribute__((weak));
int bench_alloc_mp(const struct bench_ctx *c) __attribute__((weak));
int bench_meta(const struct bench_ctx *c) __attribute__((weak));
int bench_zero(const struct bench_ctx *c) __attribute__((weak));
int bench_h2d(const struct bench_ctx *c) __attribute__((weak));
int bench_view(const struct bench_ctx *c) __attribute__((weak));
int bench_kv(const struct bench_ctx *c) __attribute__((weak));
int bench_sustain(const struct bench_ctx *c) __attribute__((weak));
int bench_xfer(const struct bench_ctx *c) __attribute__((weak));
int bench_contend(const struct bench_ctx *c) __attribute__((weak));

#endif
