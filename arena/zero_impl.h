/*
 * zero_impl.h - the zeroing engine's insides, shared by zero.c (the thread,
 * the job ring, memset mode, the public calls) and zero_uring.c (io_uring
 * mode); nothing outside those two includes it.  See zero.c for the
 * invariants and the locking.
 */
#ifndef L1_ZERO_IMPL_H
#define L1_ZERO_IMPL_H

#include "zero.h"
#include "l1arena.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define L1_ZERO_DEF_WORKERS 2u          /* ... and one fewer than the CPUs */
#define L1_ZERO_DEF_DEPTH 64u
#define L1_ZERO_MIN_DEPTH 4u
#define L1_ZERO_MAX_DEPTH 4096u
#define L1_ZERO_DEF_PIECE (2ull << 20)
#define L1_ZERO_MIN_PIECE 4096ull
#define L1_ZERO_MAX_PIECE 0xfffff000ull  /* a read's length is 32 bits */
#define L1_ZERO_JOBS 1024u              /* extents being worked on at once */
#define L1_ZERO_BATCH_MAX 64u           /* memset: extents per done() call */
#define L1_ZERO_BATCH_BYTES (16ull << 20) /* memset: report at least this often */
#define L1_ZERO_MAX_RETRIES 64u         /* -EINTR/-EAGAIN before memset */
#define L1_ZERO_TAG_POLL UINT64_MAX     /* user_data of the eventfd poll */
#define L1_ZERO_TAG_PROBE (UINT64_MAX - 1)
#define L1_ZERO_NAME_MAX 96
#define L1_ZERO_NICE 5                  /* engine and io-wq below the app */
#define L1_ZERO_NAP_NS 1000000ull       /* idle but recently busy: re-check */
#define L1_ZERO_LINGER_NS 20000000ull   /* ... for this long after work */
#define L1_ZERO_WAKE_BYTES (16ull << 20) /* queued while napping: wake now */
#define L1_ZERO_BOOST_NS 100000000ull   /* all workers this long after a wait */

enum { ZS_AWAKE = 0, ZS_NAP = 1, ZS_SLEEP = 2 };

struct zjob {
	struct l1_zero_extent e;
	uint64_t issued;                /* bytes handed to a read or memset */
	uint64_t completed;             /* bytes known to be zero, or given up */
	int lost;                       /* still_mine said no: never written again */
	int claimed;                    /* still_mine said yes once */
};

/* A read in flight.  It may span several jobs whose extents lie back to
 * back in memory (a batch freed together usually does), so that small
 * objects do not cost one io-wq work item each. */
struct zpiece {
	char *ptr;                      /* what is still to be read */
	uint64_t len;
	uint64_t seq;                   /* job that ptr lies in */
	uint64_t off;                   /* ptr's offset inside that job */
	uint32_t retries;
	uint32_t next_free;
};

struct l1_zero {
	/* set before the thread runs (or by it before `started`), then fixed */
	l1_zero_done_fn done;
	l1_zero_idle_fn idle;
	l1_zero_mine_fn still_mine;
	void *ctx;
	uint64_t piece;
	uint32_t depth;                 /* SQ entries */
	uint32_t npieces;               /* reads in flight at most: depth - 1 */
	uint32_t workers;
	uint32_t workers_boost;         /* while someone waits: the full bound */
	_Atomic uint64_t boost_until;   /* someone waits for zeroed memory */
	int32_t method;                 /* asked for, after the env override */
	int forced_memset;
	int use_uring;
	int efd;
	pthread_t thread;
	clockid_t cpu_clock;
	int have_cpu_clock;
	char name[L1_ZERO_NAME_MAX];

	/* guarded by lock */
	pthread_mutex_t lock;
	pthread_cond_t cv;
	struct l1_zero_extent *q;       /* circular submission queue */
	size_t qhead, qlen, qcap;
	uint64_t sub_seq;               /* extents ever submitted */
	uint64_t done_seq;              /* all extents <= this passed to done() */
	uint64_t submitted_bytes;
	uint64_t zeroed_bytes;
	uint64_t reported_bytes;
	uint64_t short_reads;
	uint64_t skipped_bytes;
	uint64_t busy_ns;
	uint64_t busy_since;
	int busy;
	int sleeping;                   /* ZS_*: what the engine is about to do */
	uint64_t queued_bytes;          /* in q, not yet taken */
	int stopping;
	int started;

	/* engine thread only */
	struct io_uring ring;
	int ring_ok;
	int zfd;
	struct zjob *jobs;              /* job with sequence s at jobs[s % JOBS] */
	uint64_t head_seq;              /* oldest job not yet retired */
	uint64_t taken_seq;             /* newest job taken from the queue */
	uint64_t issue_seq;             /* oldest job with bytes not issued */
	struct zpiece *pieces;
	uint32_t free_piece;            /* head of the free list; npieces = none */
	uint32_t inflight;
	int poll_armed;
	struct l1_zero_extent *batch;   /* finished, not yet passed to done() */
	uint32_t nbatch;
	uint64_t batch_bytes;
	uint64_t new_zeroed;            /* counted here, published under lock */
	uint64_t new_short;
	uint64_t new_skipped;           /* bytes of jobs refused at their first claim */
	uint64_t new_lost;              /* jobs given up since the last report */
	uint64_t last_busy_ns;          /* last loop that had work */
	int idle_pending;               /* idle() asked to be called again */
	uint32_t workers_now;           /* io-wq bound in force */
	int warned;
};

/* io-wq workers by default: 2, but never all the CPUs, so that zeroing
 * leaves a core to the threads that allocate and free (on 2 cores a
 * second worker shares the application's core and costs it a third of
 * its time; one worker alone still zeroes at about memset's speed). */
static inline uint32_t default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 1)
		return 1;
	return n - 1 < (long)L1_ZERO_DEF_WORKERS ? (uint32_t)(n - 1) : L1_ZERO_DEF_WORKERS;
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline const char *err_name(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "unknown error";
}

static inline void wake_engine(struct l1_zero *z)
{
	uint64_t one = 1;
	ssize_t r;
	do
		r = write(z->efd, &one, sizeof one);
	while (r < 0 && errno == EINTR);
	/* EAGAIN means the counter is full: the engine is woken anyway. */
}

static inline void drain_efd(struct l1_zero *z)
{
	uint64_t v;
	while (read(z->efd, &v, sizeof v) < 0 && errno == EINTR)
		;
}

/* ---- jobs (engine thread) ---------------------------------------------- */

static inline struct zjob *job_at(struct l1_zero *z, uint64_t seq)
{
	return &z->jobs[seq % L1_ZERO_JOBS];
}

static inline uint64_t jobs_active(const struct l1_zero *z)
{
	return z->taken_seq + 1 - z->head_seq;
}

static inline void job_finish_bytes(struct l1_zero *z, uint64_t seq, uint64_t n)
{
	struct zjob *j = job_at(z, seq);

	j->completed += n;
	if (!j->lost)
		z->new_zeroed += n;
	if (j->completed == j->e.len && j->lost) {
		z->new_lost++;          /* never passed to done() */
	} else if (j->completed == j->e.len) {
		z->batch[z->nbatch++] = j->e;
		z->batch_bytes += j->e.len;
	}
}

/* Moves queued extents into the job ring.  Called with lock held. */
static inline void intake_locked(struct l1_zero *z)
{
	while (z->qlen && jobs_active(z) < L1_ZERO_JOBS) {
		uint64_t seq = ++z->taken_seq;
		struct zjob *j = job_at(z, seq);

		j->e = z->q[z->qhead];
		j->issued = 0;
		j->completed = 0;
		j->lost = 0;
		j->claimed = 0;
		z->qhead = (z->qhead + 1) % z->qcap;
		z->qlen--;
		z->queued_bytes -= j->e.len;
		if (j->e.len == 0)
			job_finish_bytes(z, seq, 0);
	}
}

/* May the engine still write this job's extent?  Once not, never again. */
static inline int job_mine(struct l1_zero *z, struct zjob *j)
{
	if (j->lost || !z->still_mine)
		return !j->lost;
	if (z->still_mine(z->ctx, &j->e, !j->claimed)) {
		j->claimed = 1;
		return 1;
	}
	if (!j->claimed)
		z->new_skipped += j->e.len;     /* someone else zeroes it all */
	j->lost = 1;
	return 0;
}

/* A job taken over by another engine, or by a thread that zeroes it itself
 * (zhelp.c): what is not issued yet is given up, and the job is never
 * passed to done() (its claim is not this engine's to let go of). */
static inline void job_give_up(struct l1_zero *z, uint64_t seq)
{
	struct zjob *j = job_at(z, seq);
	uint64_t n = j->e.len - j->issued;

	j->issued = j->e.len;
	job_finish_bytes(z, seq, n);
}

/* Skips jobs with nothing left to issue; returns the next one, or NULL. */
static inline struct zjob *next_to_issue(struct l1_zero *z)
{
	while (z->issue_seq <= z->taken_seq) {
		struct zjob *j = job_at(z, z->issue_seq);
		if (j->issued < j->e.len)
			return j;
		z->issue_seq++;
	}
	return NULL;
}

/* Passes the batch to done() (no lock held), retires the jobs in order and
 * publishes the counters. */
static inline void report(struct l1_zero *z)
{
	uint64_t bytes = z->batch_bytes;

	if (z->nbatch)
		z->done(z->ctx, z->batch, z->nbatch);
	z->nbatch = 0;
	z->batch_bytes = 0;
	while (z->head_seq <= z->taken_seq) {
		struct zjob *j = job_at(z, z->head_seq);
		if (j->completed != j->e.len)
			break;
		z->head_seq++;
	}
	if (z->issue_seq < z->head_seq)
		z->issue_seq = z->head_seq;

	pthread_mutex_lock(&z->lock);
	z->reported_bytes += bytes;
	z->zeroed_bytes += z->new_zeroed;
	z->short_reads += z->new_short;
	z->skipped_bytes += z->new_skipped;
	z->new_zeroed = 0;
	z->new_short = 0;
	z->new_skipped = 0;
	z->new_lost = 0;
	if (z->done_seq != z->head_seq - 1) {
		z->done_seq = z->head_seq - 1;
		pthread_cond_broadcast(&z->cv);
	}
	pthread_mutex_unlock(&z->lock);
}

/* zero_uring.c: io_uring mode, all on the engine thread */
int l1__zero_uring_setup(struct l1_zero *z, char *why, size_t len);
void l1__zero_uring_step(struct l1_zero *z, int nap);
void l1__zero_uring_teardown(struct l1_zero *z);

#endif
