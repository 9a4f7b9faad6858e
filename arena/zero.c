/*
 * zero.c - the zeroing engine (its io_uring mode is zero_uring.c, the
 * structures both share zero_impl.h): one background thread per engine takes the
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
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>

#include "zero_impl.h"

/* ---- memset mode --------------------------------------------------------- */

static void memset_step(struct l1_zero *z)
{
	struct zjob *j;

	while (z->nbatch < L1_ZERO_BATCH_MAX &&
	       z->batch_bytes < L1_ZERO_BATCH_BYTES && (j = next_to_issue(z))) {
		uint64_t n = j->e.len - j->issued;
		uint64_t seq = z->issue_seq;

		if (!job_mine(z, j)) {
			job_give_up(z, seq);
			continue;
		}
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
		r = l1__zero_uring_setup(z, why, sizeof why);
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
			l1__zero_uring_step(z, idle && nap);
		else if (idle)
			memset_sleep(z, nap);
		else
			memset_step(z);
		if (z->nbatch || z->new_zeroed || z->new_lost)
			report(z);
	}
	l1__zero_uring_teardown(z);
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
	z->still_mine = o ? o->still_mine : NULL;
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
