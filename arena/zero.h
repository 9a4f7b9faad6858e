/*
 * zero.h - the zeroing engine (internal): clears freed extents in the
 * background so that no tenant reads another's KV data, without making the
 * caller of free do the clearing (zhelp.c decides when a free or an
 * allocation clears an extent itself; still_mine() tells the engine, with
 * the same claim).  One engine per attached process.  The
 * engine knows nothing of the pool format: it is handed extents (a slot and
 * generation as a cookie, a pointer and a length), clears them with io_uring
 * reads from /dev/zero (IOSQE_ASYNC, bounded io-wq workers, short reads
 * resubmitted) or, where io_uring cannot be set up, with memset on its own
 * thread, and calls done() from its thread with batches of finished extents.
 * done() is where the manager hands the extents back to be released, and
 * idle(), when nothing is left to zero, where it makes sure they are.
 * Thread-safety: submit/flush/stats may be called from any thread; done() is
 * only ever called from the engine's thread, never with the engine's
 * internal lock held.
 */
#ifndef L1_ZERO_H
#define L1_ZERO_H

#include <stdint.h>

struct l1_zero;

struct l1_zero_extent {
	uint32_t slot;                  /* cookie: record slot */
	uint32_t gen;                   /* cookie: record generation */
	void *ptr;
	uint64_t len;
};

typedef void (*l1_zero_done_fn)(void *ctx, const struct l1_zero_extent *done,
				uint32_t n);
/* Called from the engine's thread whenever it has nothing to zero; returns
 * 1 to be called again after a short nap (1 ms), 0 to let it sleep. */
typedef int (*l1_zero_idle_fn)(void *ctx);
/* Called from the engine's thread before it writes an extent (each piece,
 * and again before a piece that came back short goes again): 0 means the
 * extent is no longer this engine's (another engine took it over, or an
 * allocating thread took it to zero itself, zhelp.c): it is not written any
 * more and never passed to done().  first: this is the call
 * before the extent's first byte, the one that claims it (it must fail if
 * anyone else claimed it); later calls only confirm that claim. */
typedef int (*l1_zero_mine_fn)(void *ctx, const struct l1_zero_extent *e, int first);

struct l1_zero_opts {
	int32_t method;                 /* enum l1_zero_method (l1arena.h) */
	uint32_t max_workers;           /* io-wq bound; 0 = 2, at most CPUs - 1 */
	uint32_t queue_depth;           /* SQ entries; 0 = default */
	uint32_t reserved;
	uint64_t piece_bytes;           /* bytes per read; 0 = default (2 MiB) */
	l1_zero_idle_fn idle;           /* optional */
	l1_zero_mine_fn still_mine;     /* optional */
};

struct l1_zero_stats {
	uint64_t submitted_bytes;
	uint64_t zeroed_bytes;
	uint64_t pending_bytes;         /* submitted, not yet done */
	uint64_t busy_ns;               /* wall time with work in flight */
	uint64_t short_reads;           /* resubmissions after short reads */
	uint64_t skipped_bytes;         /* extents refused at the first claim, unwritten */
	uint64_t engine_cpu_ns;         /* CPU time of the engine thread */
};

/* Starts the engine thread.  Env L1ARENA_ZERO=memset|uring overrides
 * opts->method (for tests).  Never fails over to nothing: if io_uring is
 * refused, the memset method is used and method() says why. */
int l1_zero_start(const struct l1_zero_opts *o, l1_zero_done_fn done, void *ctx,
		  struct l1_zero **out);
/* Queues extents; returns at once. */
int l1_zero_submit(struct l1_zero *z, const struct l1_zero_extent *e, uint32_t n);
/* Waits until every extent submitted before the call has been passed to
 * done(); timeout_ms < 0 waits forever.  0 or -ETIMEDOUT. */
int l1_zero_flush(struct l1_zero *z, int64_t timeout_ms);
/* Waits until the oldest extent not yet passed to done() has been (or
 * nothing is pending); the same timeouts.  For a caller that needs some
 * zeroed memory, not all of it. */
int l1_zero_wait_progress(struct l1_zero *z, int64_t timeout_ms);
/* Flushes, stops the thread, frees the engine.  NULL is fine. */
void l1_zero_stop(struct l1_zero *z);
/* "io_uring" or "memset (io_uring unavailable: <reason>)" etc. */
const char *l1_zero_method_name(const struct l1_zero *z);
int l1_zero_uses_uring(const struct l1_zero *z);
void l1_zero_get_stats(const struct l1_zero *z, struct l1_zero_stats *s);

#endif
