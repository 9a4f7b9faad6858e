/*
 * zero_uring.c - the zeroing engine's io_uring mode (see zero.c): setting
 * the ring up on the engine thread (with a probe read, so a kernel that
 * accepts the ring but refuses the reads is found out), the io-wq worker
 * bound, pieces of extents read from /dev/zero with IOSQE_ASYNC, short
 * reads resubmitted, and before any piece is written or written again, the
 * question whether its extents are still this engine's (job_mine).  Engine
 * thread only; no locks.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include "zero_impl.h"

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
int l1__zero_uring_setup(struct l1_zero *z, char *why, size_t len)
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

void l1__zero_uring_teardown(struct l1_zero *z)
{
	if (z->ring_ok)
		io_uring_queue_exit(&z->ring);
	z->ring_ok = 0;
	if (z->zfd >= 0)
		close(z->zfd);
	z->zfd = -1;
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

/* Finishes the rest of a piece here: memset for the jobs still ours,
 * nothing for those taken over. */
static void piece_settle(struct l1_zero *z, struct zpiece *p)
{
	while (p->len) {
		struct zjob *j = job_at(z, p->seq);
		uint64_t k = j->e.len - p->off;

		if (k > p->len)
			k = p->len;
		if (job_mine(z, j))
			memset(p->ptr, 0, k);
		piece_credit(z, p, k);
	}
}

/* Before a piece goes again: 1 if every job it spans is still ours, else
 * the piece is settled (piece_settle) and 0. */
static int piece_still_mine(struct l1_zero *z, struct zpiece *p)
{
	uint64_t seq = p->seq, off = p->off, left = p->len;
	int all = 1;

	while (left && z->still_mine) {
		struct zjob *j = job_at(z, seq);
		uint64_t k = j->e.len - off;

		if (k > left)
			k = left;
		all &= job_mine(z, j);
		left -= k;
		seq++;
		off = 0;
	}
	if (!all)
		piece_settle(z, p);
	return all;
}

static void piece_memset(struct l1_zero *z, struct zpiece *p, int err)
{
	if (!z->warned) {
		fprintf(stderr, "l1arena: zeroing: io_uring read from /dev/zero "
			"failed (%s); clearing with memset instead\n", err_name(err));
		z->warned = 1;
	}
	piece_settle(z, p);
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

		if (!job_mine(z, j)) {
			job_give_up(z, z->issue_seq);
			continue;
		}
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
			    !job_mine(z, nj))
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
	if (!piece_still_mine(z, p))
		goto out_put;
	if (piece_queue(z, idx) == 0)
		return;
	piece_memset(z, p, EBUSY);
out_put:
	piece_put(z, idx);
}

/* One round: issue what fits, wait for at least one completion unless
 * there is something to report already, reap all that are there. */
void l1__zero_uring_step(struct l1_zero *z, int nap)
{
	struct __kernel_timespec ts = { 0, (long long)L1_ZERO_NAP_NS };
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;
	int r;

	uring_set_workers(z);
	uring_issue(z);
	if (z->nbatch || z->new_lost)  /* something to report now */
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
