/*
 * zero.c - the zeroing engine: one background thread per engine takes the
 * extents that l1_zero_submit() queued and clears them, so the thread that
 * freed them never does.  With io_uring it issues IORING_OP_READs from
 * /dev/zero into the extent in pieces (piece_bytes each, up to queue_depth-1
 * in flight), all with IOSQE_ASYNC so that the kernel's io-wq workers (bounded
 * to max_workers: 2, but one fewer than the CPUs, and 2 again for a while
 * after someone waited for zeroed memory, l1_zero_wait_progress) do the
 * copying: without it such reads would complete inline
 * on the submitting thread.  Short reads (hugetlbfs) and -EINTR/-EAGAIN are
 * resubmitted for the rest; any other error clears that piece with memset and
 * says so once on stderr.  Where io_uring cannot be set up, or memset is asked
 * for, the engine thread runs memset itself, piece by piece.  Back-to-back
 * extents share reads.  The engine runs at nice +5 (its io-wq workers with
 * it) so that zeroing yields the CPU to the threads that allocate and free.
 *
 * Invariants: every submitted extent gets a sequence number; extents are
 * started in that order but may finish out of order; done_seq is the largest
 * s such that every extent numbered <= s has been passed to done() and done()
 * has returned, which is what l1_zero_flush() waits for.  An extent is passed
 * to done() exactly once, only when all of its bytes are zero.
 *
 * Locking: `lock` guards the submission queue (q*), the sequence counters
 * sub_seq/done_seq, the stats and the flags sleeping/stopping/started; `cv`
 * (CLOCK_MONOTONIC) is signalled when done_seq moves and at start-up.  The
 * ring, the job ring, the pieces and the batch belong to the engine thread
 * alone and need no lock.  done() is called with no lock held.  Wake-ups of
 * the engine go through an eventfd (polled by the ring in io_uring mode, by
 * poll(2) in memset mode), written only when the engine said it would sleep
 * (`sleeping`): with reads in flight the next completion picks new work up,
 * and an engine that was busy a moment ago naps 1 ms at a time, so a thread
 * freeing batch after batch pays no wake-up; a flush always wakes it.
 */
#include "zero.h"
#include "l1arena.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
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
	uint64_t completed;             /* bytes known to be zero */
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
	l1_zero_claim_fn claim;
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
	uint64_t new_skipped;           /* bytes of jobs claim() refused */
	uint64_t last_busy_ns;          /* last loop that had work */
	int idle_pending;               /* idle() asked to be called again */
	uint32_t workers_now;           /* io-wq bound in force */
	int warned;
};

/* io-wq workers by default: 2, but never all the CPUs, so that zeroing
 * leaves a core to the threads that allocate and free (on 2 cores a
 * second worker shares the application's core and costs it a third of
 * its time; one worker alone still zeroes at about memset's speed). */
static uint32_t default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 1)
		return 1;
	return n - 1 < (long)L1_ZERO_DEF_WORKERS ? (uint32_t)(n - 1) : L1_ZERO_DEF_WORKERS;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *err_name(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "unknown error";
}

static void wake_engine(struct l1_zero *z)
{
	uint64_t one = 1;
	ssize_t r;
	do
		r = write(z->efd, &one, sizeof one);
	while (r < 0 && errno == EINTR);
	/* EAGAIN means the counter is full: the engine is woken anyway. */
}

static void drain_efd(struct l1_zero *z)
{
	uint64_t v;
	while (read(z->efd, &v, sizeof v) < 0 && errno == EINTR)
		;
}

/* ---- setup -------------------------------------------------------------- */

static int io_uring_sysctl_disabled(void)
{
	int v = 0;
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
	if (!f)
		return 0;
	if (fscanf(f, "%d", &v) != 1)
		v = 0;
	fclose(f);
	return v != 0;
}

/* One real read with IOSQE_ASYNC, so that a kernel that accepts the ring
 * but not the opcode, or a filter that refuses the workers, is found here
 * rather than on the first freed extent. */
static int uring_probe(struct l1_zero *z, char *why, size_t len)
{
	static const size_t n = 4096;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	unsigned char *buf;
	int r;

	buf = malloc(n);
	if (!buf) {
		snprintf(why, len, "probe: ENOMEM");
		return -ENOMEM;
	}
	memset(buf, 0xa5, n);
	sqe = io_uring_get_sqe(&z->ring);
	io_uring_prep_read(sqe, z->zfd, buf, (unsigned)n, 0);
	sqe->flags |= IOSQE_ASYNC;
	io_uring_sqe_set_data64(sqe, L1_ZERO_TAG_PROBE);
	r = io_uring_submit(&z->ring);
	if (r != 1) {
		r = r < 0 ? r : -EIO;
		snprintf(why, len, "probe: %s", err_name(-r));
		goto out_free;
	}
	do
		r = io_uring_wait_cqe(&z->ring, &cqe);
	while (r == -EINTR);
	if (r < 0) {
		snprintf(why, len, "probe: %s", err_name(-r));
		goto out_free;
	}
	r = cqe->res;
	io_uring_cqe_seen(&z->ring, cqe);
	if (r < 0) {
		snprintf(why, len, "probe: %s", err_name(-r));
		goto out_free;
	}
	/* A short probe is fine: the engine resubmits the rest. */
	if (r == 0 || buf[0] != 0 || buf[r - 1] != 0) {
		snprintf(why, len, "probe: no zeros");
		r = -EIO;
		goto out_free;
	}
	r = 0;
out_free:
	free(buf);
	return r;
}

/* Sets up the ring on the engine thread (so its io-wq is this thread's).
 * 0, or a negative errno with a short reason in why: at most 16 characters,
 * so that the method name fits the 48 bytes of l1_usage.zero_method. */
static int uring_setup(struct l1_zero *z, char *why, size_t len)
{
	struct io_uring_params p;
	unsigned vals[2];
	int r;

	z->zfd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (z->zfd < 0) {
		r = -errno;
		snprintf(why, len, "/dev/zero %s", err_name(-r));
		goto out;
	}
	memset(&p, 0, sizeof p);
	r = io_uring_queue_init_params(z->depth, &z->ring, &p);
	if (r < 0) {
		if (r == -EPERM && io_uring_sysctl_disabled())
			snprintf(why, len, "sysctl disabled");
		else
			snprintf(why, len, "setup: %s", err_name(-r));
		goto out_close;
	}
	/* Bound the io-wq: /dev/zero is a character device, so its reads go
	 * to the unbound workers; bound both kinds.  Kernels before 5.15 lack
	 * the call; the engine still works there, with the kernel's limit. */
	vals[0] = z->workers;
	vals[1] = z->workers;
	(void)io_uring_register_iowq_max_workers(&z->ring, vals);
	z->workers_now = z->workers;
	r = uring_probe(z, why, len);
	if (r < 0)
		goto out_exit;
	z->ring_ok = 1;
	return 0;

out_exit:
	io_uring_queue_exit(&z->ring);
out_close:
	close(z->zfd);
	z->zfd = -1;
out:
	return r;
}

/* Engine thread: while an allocation waits for zeroed memory (its thread
 * sleeps, so the CPU it used is free), zero with L1_ZERO_DEF_WORKERS even
 * where the default leaves a core to the application. */
static void uring_set_workers(struct l1_zero *z)
{
	uint32_t want = z->workers, vals[2];
	if (now_ns() < atomic_load_explicit(&z->boost_until, memory_order_relaxed))
		want = z->workers_boost;
	if (want == z->workers_now)
		return;
	vals[0] = want;
	vals[1] = want;
	if (io_uring_register_iowq_max_workers(&z->ring, vals) == 0)
		z->workers_now = want;
}

static void uring_teardown(struct l1_zero *z)
{
	if (z->ring_ok)
		io_uring_queue_exit(&z->ring);
	z->ring_ok = 0;
	if (z->zfd >= 0)
		close(z->zfd);
	z->zfd = -1;
}

/* ---- jobs (engine thread) ---------------------------------------------- */

static struct zjob *job_at(struct l1_zero *z, uint64_t seq)
{
	return &z->jobs[seq % L1_ZERO_JOBS];
}

static uint64_t jobs_active(const struct l1_zero *z)
{
	return z->taken_seq + 1 - z->head_seq;
}

static void job_finish_bytes(struct l1_zero *z, uint64_t seq, uint64_t n)
{
	struct zjob *j = job_at(z, seq);

	j->completed += n;
	z->new_zeroed += n;
	if (j->completed == j->e.len) {
		z->batch[z->nbatch++] = j->e;
		z->batch_bytes += j->e.len;
	}
}

/* Moves queued extents into the job ring.  Called with lock held. */
static void intake_locked(struct l1_zero *z)
{
	while (z->qlen && jobs_active(z) < L1_ZERO_JOBS) {
		uint64_t seq = ++z->taken_seq;
		struct zjob *j = job_at(z, seq);

		j->e = z->q[z->qhead];
		j->issued = 0;
		j->completed = 0;
		z->qhead = (z->qhead + 1) % z->qcap;
		z->qlen--;
		z->queued_bytes -= j->e.len;
		if (j->e.len == 0)
			job_finish_bytes(z, seq, 0);
	}
}

/* Before the first byte of job j: may the engine zero it?  If claim() says
 * someone else took it, the job is finished without a byte written and is
 * never passed to done(). */
static int job_claim(struct l1_zero *z, struct zjob *j)
{
	if (j->issued || !z->claim || z->claim(z->ctx, &j->e))
		return 1;
	j->issued = j->e.len;
	j->completed = j->e.len;
	z->new_skipped += j->e.len;
	return 0;
}

/* Skips jobs with nothing left to issue (or taken by someone else);
 * returns the next one, or NULL. */
static struct zjob *next_to_issue(struct l1_zero *z)
{
	while (z->issue_seq <= z->taken_seq) {
		struct zjob *j = job_at(z, z->issue_seq);
		if (j->issued < j->e.len && job_claim(z, j))
			return j;
		z->issue_seq++;
	}
	return NULL;
}

/* Passes the batch to done() (no lock held), retires the jobs in order and
 * publishes the counters. */
static void report(struct l1_zero *z)
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
	z->reported_bytes += bytes + z->new_skipped;
	z->zeroed_bytes += z->new_zeroed;
	z->short_reads += z->new_short;
	z->skipped_bytes += z->new_skipped;
	z->new_zeroed = 0;
	z->new_short = 0;
	z->new_skipped = 0;
	if (z->done_seq != z->head_seq - 1) {
		z->done_seq = z->head_seq - 1;
		pthread_cond_broadcast(&z->cv);
	}
	pthread_mutex_unlock(&z->lock);
}

/* ---- io_uring mode ------------------------------------------------------ */

/* n more bytes at the front of the piece are zero: credit them to the
 * jobs they belong to, in order, and move the piece past them. */
static void piece_credit(struct l1_zero *z, struct zpiece *p, uint64_t n)
{
	while (n) {
		struct zjob *j = job_at(z, p->seq);
		uint64_t k = j->e.len - p->off;

		if (k > n)
			k = n;
		job_finish_bytes(z, p->seq, k);
		p->ptr += k;
		p->len -= k;
		p->off += k;
		n -= k;
		if (p->off == j->e.len) {
			p->seq++;
			p->off = 0;
		}
	}
}

static void piece_memset(struct l1_zero *z, struct zpiece *p, int err)
{
	if (!z->warned) {
		fprintf(stderr, "l1arena: zeroing: io_uring read from /dev/zero "
			"failed (%s); clearing with memset instead\n", err_name(err));
		z->warned = 1;
	}
	memset(p->ptr, 0, p->len);
	piece_credit(z, p, p->len);
}

static struct io_uring_sqe *get_sqe(struct l1_zero *z)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&z->ring);
	if (!sqe) {
		io_uring_submit(&z->ring);
		sqe = io_uring_get_sqe(&z->ring);
	}
	return sqe;
}

/* Queues the read for what is left of piece idx: 0, or -EBUSY when no SQE
 * could be had (the caller clears the piece itself). */
static int piece_queue(struct l1_zero *z, uint32_t idx)
{
	struct zpiece *p = &z->pieces[idx];
	struct io_uring_sqe *sqe = get_sqe(z);

	if (!sqe)
		return -EBUSY;
	/* The kernel caps one read at MAX_RW_COUNT (2 GiB - 4 KiB): bigger
	 * pieces come back short and go again, like hugetlbfs short reads. */
	io_uring_prep_read(sqe, z->zfd, p->ptr, (unsigned)p->len, 0);
	sqe->flags |= IOSQE_ASYNC;
	io_uring_sqe_set_data64(sqe, idx);
	return 0;
}

static void piece_put(struct l1_zero *z, uint32_t idx)
{
	z->pieces[idx].next_free = z->free_piece;
	z->free_piece = idx;
	z->inflight--;
}

static void uring_issue(struct l1_zero *z)
{
	struct zjob *j;

	if (!z->poll_armed) {
		struct io_uring_sqe *sqe = get_sqe(z);
		if (sqe) {
			io_uring_prep_poll_add(sqe, z->efd, POLLIN);
			io_uring_sqe_set_data64(sqe, L1_ZERO_TAG_POLL);
			z->poll_armed = 1;
		}
	}
	while (z->free_piece < z->npieces && (j = next_to_issue(z))) {
		uint32_t idx = z->free_piece;
		struct zpiece *p = &z->pieces[idx];

		z->free_piece = p->next_free;
		z->inflight++;
		p->ptr = (char *)j->e.ptr + j->issued;
		p->len = 0;
		p->seq = z->issue_seq;
		p->off = j->issued;
		p->retries = 0;
		for (;;) {
			uint64_t n = j->e.len - j->issued;
			struct zjob *nj;

			if (n > z->piece - p->len)
				n = z->piece - p->len;
			j->issued += n;
			p->len += n;
			if (p->len == z->piece || z->issue_seq == z->taken_seq)
				break;
			nj = job_at(z, z->issue_seq + 1);
			if (!nj->e.len || nj->e.ptr != (char *)j->e.ptr + j->e.len ||
			    !job_claim(z, nj))
				break;
			z->issue_seq++;         /* j is all issued: go on in nj */
			j = nj;
		}
		if (piece_queue(z, idx) < 0) {
			piece_memset(z, p, EBUSY);
			piece_put(z, idx);
		}
	}
}

static void uring_complete(struct l1_zero *z, uint64_t tag, int res)
{
	struct zpiece *p;
	uint32_t idx;

	if (tag == L1_ZERO_TAG_POLL) {
		z->poll_armed = 0;
		drain_efd(z);
		return;
	}
	if (tag >= z->npieces)
		return;
	idx = (uint32_t)tag;
	p = &z->pieces[idx];
	if (res > 0) {
		piece_credit(z, p, (uint64_t)res < p->len ? (uint64_t)res : p->len);
		if (!p->len)
			goto out_put;
		/* Short read: the rest goes again. */
		z->new_short++;
		p->retries = 0;
	} else if ((res == -EINTR || res == -EAGAIN) &&
		   p->retries < L1_ZERO_MAX_RETRIES) {
		p->retries++;
	} else {
		piece_memset(z, p, res < 0 ? -res : EIO);
		goto out_put;
	}
	if (piece_queue(z, idx) == 0)
		return;
	piece_memset(z, p, EBUSY);
out_put:
	piece_put(z, idx);
}

/* One round: issue what fits, wait for at least one completion unless
 * there is something to report already, reap all that are there. */
static void uring_step(struct l1_zero *z, int nap)
{
	struct __kernel_timespec ts = { 0, (long long)L1_ZERO_NAP_NS };
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	int r;

	uring_set_workers(z);
	uring_issue(z);
	if (z->nbatch || z->new_skipped)       /* something to report now */
		r = io_uring_submit(&z->ring);
	else if (nap)
		r = io_uring_submit_and_wait_timeout(&z->ring, &cqe, 1, &ts, NULL);
	else
		r = io_uring_submit_and_wait(&z->ring, 1);
	(void)r;        /* -ETIME, -EINTR and friends: the loop comes back */
	io_uring_for_each_cqe(&z->ring, head, cqe) {
		uring_complete(z, io_uring_cqe_get_data64(cqe), cqe->res);
		seen++;
	}
	io_uring_cq_advance(&z->ring, seen);
}

/* ---- memset mode --------------------------------------------------------- */

static void memset_step(struct l1_zero *z)
{
	struct zjob *j;

	while (z->nbatch < L1_ZERO_BATCH_MAX &&
	       z->batch_bytes < L1_ZERO_BATCH_BYTES && (j = next_to_issue(z))) {
		uint64_t n = j->e.len - j->issued;
		uint64_t seq = z->issue_seq;

		if (n > z->piece)
			n = z->piece;
		memset((char *)j->e.ptr + j->issued, 0, n);
		j->issued += n;
		job_finish_bytes(z, seq, n);
		if (z->new_zeroed >= L1_ZERO_BATCH_BYTES)
			break;  /* look at the queue (and stop) now and then */
	}
}

static void memset_sleep(struct l1_zero *z, int nap)
{
	struct pollfd pfd = { .fd = z->efd, .events = POLLIN };

	if (poll(&pfd, 1, nap ? (int)(L1_ZERO_NAP_NS / 1000000) : -1) > 0)
		drain_efd(z);
}

/* ---- the thread ------------------------------------------------------- */

/* Zeroing is housekeeping: it should not take the CPU from the threads
 * that allocate and free.  The io-wq workers are forked from this thread
 * and inherit its nice value, so they yield too.  Under full load the
 * zeroing still gets its share (nice +5 weighs about a third of nice 0),
 * and an allocation that has to wait for it sleeps, which frees the CPU.
 * On 2 cores this halved the wall time of an allocate+free loop. */
static void engine_lower_priority(void)
{
	id_t tid = (id_t)gettid();
	int nice;

	errno = 0;
	nice = getpriority(PRIO_PROCESS, tid);
	if (nice == -1 && errno)
		return;
	nice += L1_ZERO_NICE;
	(void)setpriority(PRIO_PROCESS, tid, nice > 19 ? 19 : nice);
}

static void engine_init(struct l1_zero *z)
{
	char why[64] = "";
	int r = -1;

	if (!z->forced_memset)
		r = uring_setup(z, why, sizeof why);
	pthread_mutex_lock(&z->lock);
	if (r == 0) {
		z->use_uring = 1;
		snprintf(z->name, sizeof z->name, "io_uring");
	} else if (z->forced_memset) {
		snprintf(z->name, sizeof z->name, "memset (forced by config/env)");
	} else {
		snprintf(z->name, sizeof z->name, "memset (io_uring unavailable: %s)",
			 why);
	}
	z->started = 1;
	pthread_cond_broadcast(&z->cv);
	pthread_mutex_unlock(&z->lock);
}

static void *engine_main(void *arg)
{
	struct l1_zero *z = arg;

	pthread_setname_np(pthread_self(), "l1zero");
	engine_lower_priority();
	engine_init(z);
	for (;;) {
		int idle, stop, nap = 0;
		uint64_t now;

		if (z->idle && jobs_active(z) == 0)
			z->idle_pending = z->idle(z->ctx);
		pthread_mutex_lock(&z->lock);
		intake_locked(z);
		idle = jobs_active(z) == 0;
		now = now_ns();
		if (!idle)
			z->last_busy_ns = now;
		else
			nap = now - z->last_busy_ns < L1_ZERO_LINGER_NS || z->idle_pending;
		if (!idle && !z->busy) {
			z->busy = 1;
			z->busy_since = now;
		} else if (idle && z->busy) {
			z->busy = 0;
			z->busy_ns += now - z->busy_since;
		}
		stop = idle && z->stopping;
		/* Say how we are about to sleep before letting go of the lock,
		 * so that a submit after the intake above knows whether to
		 * write the eventfd.  With reads in flight the next completion
		 * wakes us; idle but busy a moment ago, we nap and look again
		 * in a millisecond, so a thread freeing batch after batch does
		 * not pay a wake-up (a syscall and an IPI) for each one. */
		z->sleeping = stop || !idle ? ZS_AWAKE : nap ? ZS_NAP : ZS_SLEEP;
		pthread_mutex_unlock(&z->lock);
		if (stop)
			break;

		if (z->use_uring)
			uring_step(z, idle && nap);
		else if (idle)
			memset_sleep(z, nap);
		else
			memset_step(z);
		if (z->nbatch || z->new_zeroed || z->new_skipped)
			report(z);
	}
	uring_teardown(z);
	return NULL;
}

/* ---- public calls -------------------------------------------------------- */

static int32_t method_from_env(int32_t method)
{
	const char *e = getenv("L1ARENA_ZERO");

	if (!e || !*e)
		return method;
	if (!strcmp(e, "memset"))
		return L1_ZERO_MEMSET;
	if (!strcmp(e, "uring") || !strcmp(e, "io_uring"))
		return L1_ZERO_URING;
	if (!strcmp(e, "auto"))
		return L1_ZERO_AUTO;
	return method;
}

static void engine_free(struct l1_zero *z)
{
	free(z->q);
	free(z->jobs);
	free(z->pieces);
	free(z->batch);
	free(z);
}

int l1_zero_start(const struct l1_zero_opts *o, l1_zero_done_fn done, void *ctx,
		  struct l1_zero **out)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	struct l1_zero *z;
	int r;

	if (!done || !out)
		return -EINVAL;
	*out = NULL;
	z = calloc(1, sizeof *z);
	if (!z)
		return -ENOMEM;
	z->done = done;
	z->idle = o ? o->idle : NULL;
	z->claim = o ? o->claim : NULL;
	z->ctx = ctx;
	z->zfd = -1;
	z->head_seq = 1;
	z->issue_seq = 1;
	z->method = method_from_env(o ? o->method : L1_ZERO_AUTO);
	z->forced_memset = z->method == L1_ZERO_MEMSET;
	z->piece = o && o->piece_bytes ? o->piece_bytes : L1_ZERO_DEF_PIECE;
	if (z->piece < L1_ZERO_MIN_PIECE)
		z->piece = L1_ZERO_MIN_PIECE;
	if (z->piece > L1_ZERO_MAX_PIECE)
		z->piece = L1_ZERO_MAX_PIECE;
	z->depth = o && o->queue_depth ? o->queue_depth : L1_ZERO_DEF_DEPTH;
	if (z->depth < L1_ZERO_MIN_DEPTH)
		z->depth = L1_ZERO_MIN_DEPTH;
	if (z->depth > L1_ZERO_MAX_DEPTH)
		z->depth = L1_ZERO_MAX_DEPTH;
	z->workers = o && o->max_workers ? o->max_workers : default_workers();
	z->workers_boost = o && o->max_workers ? o->max_workers : L1_ZERO_DEF_WORKERS;

	r = -ENOMEM;
	z->qcap = 256;
	z->q = malloc(z->qcap * sizeof *z->q);
	z->jobs = calloc(L1_ZERO_JOBS, sizeof *z->jobs);
	z->batch = calloc(L1_ZERO_JOBS, sizeof *z->batch);
	/* One SQE stays for the eventfd poll. */
	z->npieces = z->depth - 1;
	z->pieces = calloc(z->npieces, sizeof *z->pieces);
	if (!z->q || !z->jobs || !z->batch || !z->pieces)
		goto out_free;
	for (uint32_t i = 0; i < z->npieces; i++)
		z->pieces[i].next_free = i + 1;
	z->free_piece = 0;

	z->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (z->efd < 0) {
		r = -errno;
		goto out_free;
	}
	r = -pthread_condattr_init(&ca);
	if (r)
		goto out_efd;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	r = -pthread_cond_init(&z->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (r)
		goto out_efd;
	r = -pthread_mutex_init(&z->lock, NULL);
	if (r)
		goto out_cond;

	/* The engine takes no signals: the process's handlers run elsewhere
	 * and its blocking calls are not cut short. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&z->thread, NULL, engine_main, z);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		goto out_mutex;
	z->have_cpu_clock = pthread_getcpuclockid(z->thread, &z->cpu_clock) == 0;

	pthread_mutex_lock(&z->lock);
	while (!z->started)
		pthread_cond_wait(&z->cv, &z->lock);
	pthread_mutex_unlock(&z->lock);
	*out = z;
	return 0;

out_mutex:
	pthread_mutex_destroy(&z->lock);
out_cond:
	pthread_cond_destroy(&z->cv);
out_efd:
	close(z->efd);
out_free:
	engine_free(z);
	return r;
}

/* Makes room for n more entries in the circular queue (lock held). */
static int queue_reserve_locked(struct l1_zero *z, size_t n)
{
	struct l1_zero_extent *nq;
	size_t cap = z->qcap;

	if (z->qlen + n <= z->qcap)
		return 0;
	while (cap < z->qlen + n)
		cap *= 2;
	nq = malloc(cap * sizeof *nq);
	if (!nq)
		return -ENOMEM;
	for (size_t i = 0; i < z->qlen; i++)
		nq[i] = z->q[(z->qhead + i) % z->qcap];
	free(z->q);
	z->q = nq;
	z->qcap = cap;
	z->qhead = 0;
	return 0;
}

int l1_zero_submit(struct l1_zero *z, const struct l1_zero_extent *e, uint32_t n)
{
	uint64_t bytes = 0;
	int wake = 0, r;

	if (!z || (n && !e))
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		if (!e[i].ptr && e[i].len)
			return -EINVAL;
		bytes += e[i].len;
	}
	if (!n)
		return 0;
	pthread_mutex_lock(&z->lock);
	r = queue_reserve_locked(z, n);
	if (r < 0)
		goto out_unlock;
	for (uint32_t i = 0; i < n; i++)
		z->q[(z->qhead + z->qlen + i) % z->qcap] = e[i];
	z->qlen += n;
	z->sub_seq += n;
	z->submitted_bytes += bytes;
	z->queued_bytes += bytes;
	if (z->sleeping == ZS_SLEEP ||
	    (z->sleeping == ZS_NAP && z->queued_bytes >= L1_ZERO_WAKE_BYTES)) {
		z->sleeping = ZS_AWAKE;
		wake = 1;
	}
out_unlock:
	pthread_mutex_unlock(&z->lock);
	if (wake)
		wake_engine(z);
	return r;
}

/* Waits until done_seq reaches the target: every extent submitted before
 * the call, or (progress_only) just the next one to finish. */
static int wait_done(struct l1_zero *z, int64_t timeout_ms, int progress_only)
{
	struct timespec dl;
	uint64_t target;
	int r = 0;

	if (!z)
		return 0;
	if (pthread_equal(pthread_self(), z->thread))
		return -EDEADLK;        /* from done(): would wait for itself */
	if (timeout_ms >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += timeout_ms / 1000;
		dl.tv_nsec += (timeout_ms % 1000) * 1000000;
		if (dl.tv_nsec >= 1000000000) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000;
		}
	}
	pthread_mutex_lock(&z->lock);
	target = progress_only && z->done_seq < z->sub_seq ? z->done_seq + 1 : z->sub_seq;
	if (z->done_seq < target && z->sleeping != ZS_AWAKE) {
		z->sleeping = ZS_AWAKE;         /* someone waits: no napping */
		wake_engine(z);
	}
	while (z->done_seq < target) {
		if (timeout_ms < 0) {
			pthread_cond_wait(&z->cv, &z->lock);
		} else if (pthread_cond_timedwait(&z->cv, &z->lock, &dl) == ETIMEDOUT) {
			if (z->done_seq < target)
				r = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&z->lock);
	return r;
}

int l1_zero_flush(struct l1_zero *z, int64_t timeout_ms)
{
	return wait_done(z, timeout_ms, 0);
}

int l1_zero_wait_progress(struct l1_zero *z, int64_t timeout_ms)
{
	if (z)  /* the waiter sleeps: zeroing may use its CPU meanwhile */
		atomic_store_explicit(&z->boost_until, now_ns() + L1_ZERO_BOOST_NS,
				      memory_order_relaxed);
	return wait_done(z, timeout_ms, 1);
}

void l1_zero_stop(struct l1_zero *z)
{
	if (!z)
		return;
	pthread_mutex_lock(&z->lock);
	z->stopping = 1;
	pthread_mutex_unlock(&z->lock);
	wake_engine(z);
	pthread_join(z->thread, NULL);
	pthread_mutex_destroy(&z->lock);
	pthread_cond_destroy(&z->cv);
	close(z->efd);
	engine_free(z);
}

const char *l1_zero_method_name(const struct l1_zero *z)
{
	return z ? z->name : "none";
}

int l1_zero_uses_uring(const struct l1_zero *z)
{
	return z ? z->use_uring : 0;
}

void l1_zero_get_stats(const struct l1_zero *z, struct l1_zero_stats *s)
{
	struct l1_zero *m = (struct l1_zero *)z;        /* for the lock */
	struct timespec ts;

	memset(s, 0, sizeof *s);
	if (!z)
		return;
	pthread_mutex_lock(&m->lock);
	s->submitted_bytes = m->submitted_bytes;
	s->zeroed_bytes = m->zeroed_bytes;
	s->pending_bytes = m->submitted_bytes - m->reported_bytes;
	s->short_reads = m->short_reads;
	s->skipped_bytes = m->skipped_bytes;
	s->busy_ns = m->busy_ns + (m->busy ? now_ns() - m->busy_since : 0);
	pthread_mutex_unlock(&m->lock);
	if (z->have_cpu_clock && clock_gettime(z->cpu_clock, &ts) == 0)
		s->engine_cpu_ns = (uint64_t)ts.tv_sec * 1000000000ull +
				   (uint64_t)ts.tv_nsec;
}
