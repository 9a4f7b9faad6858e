/*
 * check_zero.c - the zeroing engine on its own (no pool): memory comes from
 * anonymous mappings, and from a hugetlbfs file when run.sh mounted one
 * ($L1_TEST_HUGETLBFS=1, $L1_TEST_DIR), where short reads happen.  Each test
 * fills a pattern, hands extents to the engine and checks every byte reads
 * zero afterwards, that done() saw each extent exactly once with its cookie,
 * and what flush/stop promise.  Nothing here measures time: "submit returns
 * before the zeroing" is checked by holding the engine inside done() and
 * looking at pending_bytes, the done count and the pattern.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "l1arena.h"
#include "zero.h"
#include "common/testutil.h"

#define MiB (1ull << 20)
#define KiB (1ull << 10)
#define MAX_EXT 8192

/* What done() saw; read by the test after flush/stop (which order it). */
struct rec {
	uint32_t calls;
	uint32_t maxbatch;
	uint32_t seen;                  /* extents reported */
	uint32_t times[MAX_EXT];        /* per slot */
	struct l1_zero_extent want[MAX_EXT];
	int bad;                        /* cookie/ptr/len mismatch */
	/* gate: the first done() call waits here */
	int gate;
	sem_t entered, release;
	/* flush from inside done() */
	struct l1_zero *self;
	int flush_in_done;
};

static void rec_done(void *ctx, const struct l1_zero_extent *d, uint32_t n)
{
	struct rec *r = ctx;

	if (r->gate) {
		r->gate = 0;
		sem_post(&r->entered);
		sem_wait(&r->release);
	}
	if (r->self) {
		r->flush_in_done = l1_zero_flush(r->self, 0);
		r->self = NULL;
	}
	r->calls++;
	if (n > r->maxbatch)
		r->maxbatch = n;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t s = d[i].slot;
		if (s >= MAX_EXT || d[i].gen != r->want[s].gen ||
		    d[i].ptr != r->want[s].ptr || d[i].len != r->want[s].len) {
			r->bad++;
			continue;
		}
		r->times[s]++;
		r->seen++;
	}
}

static struct rec *rec_new(void)
{
	struct rec *r = calloc(1, sizeof *r);
	ck_assert_ptr_nonnull(r);
	sem_init(&r->entered, 0, 0);
	sem_init(&r->release, 0, 0);
	return r;
}

static void *map_anon(uint64_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_msg(p != MAP_FAILED, "mmap %llu: %s", (unsigned long long)len,
		      strerror(errno));
	return p;
}

/* Cuts [base, base+len) into n extents of varying size (some odd, some
 * tiny), records them as expected, and fills the pattern. */
static uint32_t make_extents(struct rec *r, char *base, uint64_t len,
			     uint64_t unit, struct l1_zero_extent *e, uint32_t max)
{
	uint64_t off = 0;
	uint32_t n = 0;

	l1t_fill(base, len, 42);
	while (off < len && n < max) {
		uint64_t sz = unit + (n % 3 == 1 ? 4096 : 0) - (n % 5 == 2 ? 8 : 0);
		if (sz > len - off || n + 1 == max)
			sz = len - off;
		e[n].slot = n;
		e[n].gen = 1000 + n * 7;
		e[n].ptr = base + off;
		e[n].len = sz;
		r->want[n] = e[n];
		off += sz;
		n++;
	}
	return n;
}

static void check_all_once(const struct rec *r, uint32_t n)
{
	ck_assert_int_eq(r->bad, 0);
	ck_assert_uint_eq(r->seen, n);
	for (uint32_t i = 0; i < n; i++)
		ck_assert_msg(r->times[i] == 1, "extent %u reported %u times", i,
			      r->times[i]);
}

static struct l1_zero *start(int32_t method, uint64_t piece, uint32_t depth,
			     struct rec *r)
{
	struct l1_zero_opts o = { .method = method, .piece_bytes = piece,
				  .queue_depth = depth };
	struct l1_zero *z = NULL;
	int rc = l1_zero_start(&o, rec_done, r, &z);
	ck_assert_msg(rc == 0, "l1_zero_start: %s", strerror(-rc));
	ck_assert_ptr_nonnull(z);
	return z;
}

/* io_uring where the host allows it; either way the name must say which. */
static void check_method(struct l1_zero *z)
{
	const char *m = l1_zero_method_name(z);
	if (l1_zero_uses_uring(z))
		ck_assert_str_eq(m, "io_uring");
	else
		ck_assert_msg(!strncmp(m, "memset (io_uring unavailable: ", 30),
			      "method: %s", m);
}

/* Runs a full fill/submit/flush/check cycle over region. */
static void zero_region(struct l1_zero *z, struct rec *r, char *base,
			uint64_t len, uint64_t unit)
{
	static struct l1_zero_extent e[MAX_EXT];
	struct l1_zero_stats s0, s;
	uint32_t n = make_extents(r, base, len, unit, e, MAX_EXT);

	l1_zero_get_stats(z, &s0);
	ck_assert_int_eq(l1_zero_submit(z, e, n), 0);
	ck_assert_int_eq(l1_zero_flush(z, 120000), 0);
	check_all_once(r, n);
	ck_assert_msg(l1t_is_zero(base, len), "memory not zero after flush");
	l1_zero_get_stats(z, &s);
	ck_assert_uint_eq(s.submitted_bytes - s0.submitted_bytes, len);
	ck_assert_uint_eq(s.zeroed_bytes - s0.zeroed_bytes, len);
	ck_assert_uint_eq(s.pending_bytes, 0);
}

START_TEST(test_anon_auto)
{
	struct rec *r = rec_new();
	uint64_t len = 64 * MiB;
	char *p = map_anon(len);
	struct l1_zero *z = start(L1_ZERO_AUTO, 0, 0, r);
	struct l1_zero_stats s;

	check_method(z);
	zero_region(z, r, p, len, 3 * MiB);
	l1_zero_get_stats(z, &s);
	ck_assert_uint_gt(s.busy_ns, 0);
	ck_assert_uint_gt(s.engine_cpu_ns, 0);
	l1_zero_stop(z);
	munmap(p, len);
	free(r);
}
END_TEST

START_TEST(test_many_in_flight)
{
	struct rec *r = rec_new();
	uint64_t len = 128 * MiB;
	char *p = map_anon(len);
	/* Small pieces and a deep ring: hundreds of reads in flight, extents
	 * of several pieces each, finishing out of order. */
	struct l1_zero *z = start(L1_ZERO_AUTO, 16 * KiB, 512, r);

	zero_region(z, r, p, len, 40 * KiB);
	/* and again over the same memory, with the same engine */
	memset(r->times, 0, sizeof r->times);
	r->seen = 0;
	zero_region(z, r, p, len, 1 * MiB);
	l1_zero_stop(z);
	munmap(p, len);
	free(r);
}
END_TEST

/* Extents back to back (merged into shared reads), with gaps between some
 * and out of address order for others: every extent reads zero, and no
 * byte outside them was touched. */
START_TEST(test_coalesce_bounds)
{
	struct rec *r = rec_new();
	static struct l1_zero_extent e[MAX_EXT];
	static uint64_t gap_off[MAX_EXT], gap_len[MAX_EXT];
	uint64_t len = 96 * MiB, off = 0, x = 12345;
	uint32_t n = 0, ng = 0;
	char *p = map_anon(len);
	struct l1_zero *z = start(L1_ZERO_AUTO, 256 * KiB, 32, r);

	memset(p, 0xc3, len);
	while (n < 4000) {
		uint64_t sz, gap;

		x = x * 6364136223846793005ull + 1442695040888963407ull;
		sz = 1 + (x >> 33) % (300 * KiB);
		gap = (x >> 20) % 4 == 0 ? 1 + (x >> 40) % 5000 : 0;
		if (off + sz + gap > len)
			break;
		e[n] = (struct l1_zero_extent){ .slot = n, .gen = (uint32_t)x,
						.ptr = p + off, .len = sz };
		r->want[n] = e[n];
		n++;
		off += sz;
		if (gap) {
			gap_off[ng] = off;
			gap_len[ng++] = gap;
			off += gap;
		}
	}
	gap_off[ng] = off;
	gap_len[ng++] = len - off;
	/* swap some neighbours so address order and queue order differ */
	for (uint32_t i = 0; i + 1 < n; i += 7) {
		struct l1_zero_extent t = e[i];
		e[i] = e[i + 1];
		e[i + 1] = t;
	}
	ck_assert_int_eq(l1_zero_submit(z, e, n), 0);
	ck_assert_int_eq(l1_zero_flush(z, 120000), 0);
	check_all_once(r, n);
	for (uint32_t i = 0; i < n; i++)
		ck_assert_msg(l1t_is_zero(e[i].ptr, e[i].len), "extent %u not zero", i);
	for (uint32_t i = 0; i < ng; i++)
		ck_assert_msg(l1t_is_filled((unsigned char *)p + gap_off[i], gap_len[i], 0xc3),
			      "gap %u at %llu was written", i,
			      (unsigned long long)gap_off[i]);
	l1_zero_stop(z);
	munmap(p, len);
	free(r);
}
END_TEST

static void batching(int32_t method)
{
	struct rec *r = rec_new();
	static struct l1_zero_extent e[1000];
	uint64_t len = 1000 * 4 * KiB;
	char *p = map_anon(len);
	struct l1_zero *z = start(method, 0, 0, r);

	l1t_fill(p, len, 7);
	for (uint32_t i = 0; i < 1000; i++) {
		e[i].slot = i;
		e[i].gen = 0xabc00000u + i;
		e[i].ptr = p + i * 4 * KiB;
		e[i].len = 4 * KiB;
		r->want[i] = e[i];
	}
	ck_assert_int_eq(l1_zero_submit(z, e, 1000), 0);
	ck_assert_int_eq(l1_zero_flush(z, 60000), 0);
	check_all_once(r, 1000);
	ck_assert(l1t_is_zero(p, len));
	ck_assert_uint_le(r->calls, 1000);
	/* memset takes the whole queue at once: it must report in batches. */
	if (!l1_zero_uses_uring(z))
		ck_assert_msg(r->maxbatch > 1 && r->calls < 1000,
			      "%u calls, largest batch %u", r->calls, r->maxbatch);
	l1_zero_stop(z);
	munmap(p, len);
	free(r);
}

START_TEST(test_batch_cookies_uring)
{
	batching(L1_ZERO_AUTO);
}
END_TEST

START_TEST(test_batch_cookies_memset)
{
	batching(L1_ZERO_MEMSET);
}
END_TEST

START_TEST(test_zero_length)
{
	struct rec *r = rec_new();
	char buf[64];
	struct l1_zero_extent e[3] = {
		{ .slot = 0, .gen = 1, .ptr = buf, .len = 0 },
		{ .slot = 1, .gen = 2, .ptr = NULL, .len = 0 },
		{ .slot = 2, .gen = 3, .ptr = buf, .len = sizeof buf },
	};
	struct l1_zero *z = start(L1_ZERO_AUTO, 0, 0, r);

	memset(buf, 0x5a, sizeof buf);
	for (int i = 0; i < 3; i++)
		r->want[i] = e[i];
	ck_assert_int_eq(l1_zero_submit(z, e, 3), 0);
	ck_assert_int_eq(l1_zero_flush(z, 60000), 0);
	check_all_once(r, 3);
	ck_assert(l1t_is_zero(buf, sizeof buf));
	l1_zero_stop(z);
	free(r);
}
END_TEST

START_TEST(test_bad_args)
{
	struct rec *r = rec_new();
	struct l1_zero *z = NULL;
	struct l1_zero_extent e = { .slot = 0, .ptr = NULL, .len = 4096 };
	struct l1_zero_stats s;

	ck_assert_int_eq(l1_zero_start(NULL, NULL, r, &z), -EINVAL);
	ck_assert_ptr_null(z);
	z = start(L1_ZERO_AUTO, 0, 0, r);
	ck_assert_int_eq(l1_zero_submit(z, &e, 1), -EINVAL);
	ck_assert_int_eq(l1_zero_submit(z, NULL, 1), -EINVAL);
	ck_assert_int_eq(l1_zero_submit(z, NULL, 0), 0);
	l1_zero_get_stats(z, &s);
	ck_assert_uint_eq(s.submitted_bytes, 0);
	/* nothing submitted: flush returns at once, even with no time */
	ck_assert_int_eq(l1_zero_flush(z, 0), 0);
	l1_zero_stop(z);
	l1_zero_stop(NULL);
	ck_assert_int_eq(l1_zero_flush(NULL, 0), 0);
	free(r);
}
END_TEST

/* Holds the engine inside done() for a first, tiny extent, then submits
 * `big` and checks the submit came back with it queued, not zeroed. */
static void gated_large(int32_t method, uint64_t big)
{
	struct rec *r = rec_new();
	char *p = map_anon(big + 4096);
	struct l1_zero_extent e[2] = {
		{ .slot = 0, .gen = 5, .ptr = p + big, .len = 4096 },
		{ .slot = 1, .gen = 6, .ptr = p, .len = big },
	};
	struct l1_zero *z = start(method, 0, 0, r);
	struct l1_zero_stats s;

	r->want[0] = e[0];
	r->want[1] = e[1];
	l1t_fill(p, big + 4096, 99);
	r->gate = 1;
	ck_assert_int_eq(l1_zero_submit(z, &e[0], 1), 0);
	sem_wait(&r->entered);          /* the engine is in done() now */

	ck_assert_int_eq(l1_zero_submit(z, &e[1], 1), 0);
	l1_zero_get_stats(z, &s);
	ck_assert_uint_eq(s.submitted_bytes, big + 4096);
	ck_assert_uint_ge(s.pending_bytes, big);
	ck_assert_uint_eq(r->times[1], 0);
	ck_assert_msg(l1t_check(p, big, 99),
		      "submit zeroed the memory itself instead of queueing it");
	/* flush cannot finish while done() is held */
	ck_assert_int_eq(l1_zero_flush(z, 0), -ETIMEDOUT);

	sem_post(&r->release);
	ck_assert_int_eq(l1_zero_flush(z, 120000), 0);
	check_all_once(r, 2);
	ck_assert(l1t_is_zero(p, big + 4096));
	l1_zero_get_stats(z, &s);
	ck_assert_uint_eq(s.pending_bytes, 0);
	ck_assert_uint_eq(s.zeroed_bytes, big + 4096);
	l1_zero_stop(z);
	munmap(p, big + 4096);
	free(r);
}

START_TEST(test_large_async_uring)
{
	gated_large(L1_ZERO_AUTO, 256 * MiB);
}
END_TEST

START_TEST(test_large_async_memset)
{
	gated_large(L1_ZERO_MEMSET, 256 * MiB);
}
END_TEST

/* flush covers what was submitted before it, and says -ETIMEDOUT when the
 * time runs out; from inside done() it refuses rather than deadlock. */
START_TEST(test_flush)
{
	struct rec *r = rec_new();
	uint64_t len = 32 * MiB;
	char *p = map_anon(len);
	struct l1_zero_extent e[16];
	struct l1_zero *z = start(L1_ZERO_AUTO, 0, 0, r);

	l1t_fill(p, len, 3);
	for (uint32_t i = 0; i < 16; i++) {
		e[i].slot = i;
		e[i].gen = i;
		e[i].ptr = p + i * 2 * MiB;
		e[i].len = 2 * MiB;
		r->want[i] = e[i];
	}
	/* one batch, flush, every extent of it is in done() already */
	r->self = z;
	ck_assert_int_eq(l1_zero_submit(z, e, 8), 0);
	ck_assert_int_eq(l1_zero_flush(z, 60000), 0);
	ck_assert_int_eq(r->flush_in_done, -EDEADLK);
	for (uint32_t i = 0; i < 8; i++)
		ck_assert_uint_eq(r->times[i], 1);
	ck_assert(l1t_is_zero(p, 16 * MiB));
	ck_assert(l1t_check(p + 16 * MiB, 16 * MiB, 3 + 2 * MiB));

	/* held engine: flush times out, then completes once released */
	r->gate = 1;
	ck_assert_int_eq(l1_zero_submit(z, &e[8], 1), 0);
	sem_wait(&r->entered);
	ck_assert_int_eq(l1_zero_submit(z, &e[9], 7), 0);
	ck_assert_int_eq(l1_zero_flush(z, 50), -ETIMEDOUT);
	sem_post(&r->release);
	ck_assert_int_eq(l1_zero_flush(z, -1), 0);
	check_all_once(r, 16);
	ck_assert(l1t_is_zero(p, len));
	l1_zero_stop(z);
	munmap(p, len);
	free(r);
}
END_TEST

/* No flush needed: work submitted right after other work (the engine naps)
 * and after a long idle spell (the engine sleeps until woken) both get done
 * on their own.  The clock only bounds the wait; nothing asserts a speed. */
static int wait_no_pending(struct l1_zero *z)
{
	struct l1_zero_stats s;

	for (int i = 0; i < 20000; i++) {
		struct timespec ts = { 0, 1000000 };
		l1_zero_get_stats(z, &s);
		if (!s.pending_bytes)
			return 1;
		nanosleep(&ts, NULL);
	}
	return 0;
}

static void progress(int32_t method)
{
	struct rec *r = rec_new();
	char *p = map_anon(4 * MiB);
	struct l1_zero *z = start(method, 0, 0, r);

	for (uint32_t i = 0; i < 4; i++) {
		struct l1_zero_extent e = { .slot = i, .gen = i, .ptr = p + i * MiB,
					    .len = MiB };
		r->want[i] = e;
		memset(e.ptr, 0x77, MiB);
		if (i == 2) {   /* long enough idle for the engine to sleep */
			struct timespec ts = { 0, 100000000 };
			nanosleep(&ts, NULL);
		}
		ck_assert_int_eq(l1_zero_submit(z, &e, 1), 0);
		ck_assert_msg(wait_no_pending(z), "extent %u never zeroed without flush", i);
		ck_assert_uint_eq(r->times[i], 1);
		ck_assert(l1t_is_zero(e.ptr, MiB));
	}
	l1_zero_stop(z);
	munmap(p, 4 * MiB);
	free(r);
}

START_TEST(test_progress_uring)
{
	progress(L1_ZERO_AUTO);
}
END_TEST

START_TEST(test_progress_memset)
{
	progress(L1_ZERO_MEMSET);
}
END_TEST

/* Flushers on several threads while another thread keeps submitting. */
struct flusher {
	struct l1_zero *z;
	struct rec *r;
	char *base;
	uint32_t first, n;
	int fail;
};

static void *flush_thread(void *arg)
{
	struct flusher *f = arg;

	for (uint32_t i = f->first; i < f->first + f->n; i++) {
		struct l1_zero_extent e = { .slot = i, .gen = i, .ptr = f->base + i * 64 * KiB,
					    .len = 64 * KiB };
		if (l1_zero_submit(f->z, &e, 1) || l1_zero_flush(f->z, 60000)) {
			f->fail = 1;
			break;
		}
		/* done() for e has returned: its bytes must be zero now */
		if (!l1t_is_zero(e.ptr, e.len)) {
			f->fail = 2;
			break;
		}
	}
	return NULL;
}

START_TEST(test_flush_threads)
{
	struct rec *r = rec_new();
	uint32_t per = 500, nt = 4;
	uint64_t len = (uint64_t)per * nt * 64 * KiB;
	char *p = map_anon(len);
	struct l1_zero *z = start(L1_ZERO_AUTO, 16 * KiB, 0, r);
	pthread_t t[4];
	struct flusher f[4];

	l1t_fill(p, len, 11);
	for (uint32_t i = 0; i < per * nt; i++) {
		r->want[i].slot = i;
		r->want[i].gen = i;
		r->want[i].ptr = p + i * 64 * KiB;
		r->want[i].len = 64 * KiB;
	}
	for (uint32_t i = 0; i < nt; i++) {
		f[i] = (struct flusher){ .z = z, .r = r, .base = p, .first = i * per,
					 .n = per };
		ck_assert_int_eq(pthread_create(&t[i], NULL, flush_thread, &f[i]), 0);
	}
	for (uint32_t i = 0; i < nt; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(f[i].fail, 0);
	}
	l1_zero_stop(z);
	check_all_once(r, per * nt);
	ck_assert(l1t_is_zero(p, len));
	munmap(p, len);
	free(r);
}
END_TEST

START_TEST(test_memset_forced_opts)
{
	struct rec *r = rec_new();
	uint64_t len = 32 * MiB;
	char *p = map_anon(len);
	struct l1_zero *z;

	unsetenv("L1ARENA_ZERO");
	z = start(L1_ZERO_MEMSET, 0, 0, r);
	ck_assert_int_eq(l1_zero_uses_uring(z), 0);
	ck_assert_str_eq(l1_zero_method_name(z), "memset (forced by config/env)");
	zero_region(z, r, p, len, 5 * MiB);
	l1_zero_stop(z);
	munmap(p, len);
	free(r);
}
END_TEST

START_TEST(test_memset_forced_env)
{
	struct rec *r = rec_new();
	uint64_t len = 32 * MiB;
	char *p = map_anon(len);
	struct l1_zero *z;

	setenv("L1ARENA_ZERO", "memset", 1);
	z = start(L1_ZERO_URING, 0, 0, r);      /* env wins over opts */
	ck_assert_int_eq(l1_zero_uses_uring(z), 0);
	ck_assert_str_eq(l1_zero_method_name(z), "memset (forced by config/env)");
	zero_region(z, r, p, len, 1 * MiB + 512);
	l1_zero_stop(z);
	unsetenv("L1ARENA_ZERO");
	munmap(p, len);
	free(r);
}
END_TEST

START_TEST(test_uring_forced_env)
{
	struct rec *r = rec_new();
	uint64_t len = 16 * MiB;
	char *p = map_anon(len);
	struct l1_zero *z;

	setenv("L1ARENA_ZERO", "uring", 1);
	z = start(L1_ZERO_MEMSET, 0, 0, r);     /* env wins over opts */
	check_method(z);                        /* io_uring, or says why not */
	zero_region(z, r, p, len, 2 * MiB);
	l1_zero_stop(z);
	unsetenv("L1ARENA_ZERO");
	munmap(p, len);
	free(r);
}
END_TEST

/* io_uring refused (as seccomp does in many containers): the engine falls
 * back to memset, says why, and still zeroes everything.  The filter only
 * lives in this test's forked child. */
static void deny_io_uring(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };

	ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	ck_assert_msg(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0,
		      "seccomp: %s", strerror(errno));
}

static void fallback_seccomp(int32_t method, const char *env)
{
	struct rec *r = rec_new();
	uint64_t len = 16 * MiB;
	char *p = map_anon(len);
	struct l1_zero *z;

	if (env)
		setenv("L1ARENA_ZERO", env, 1);
	else
		unsetenv("L1ARENA_ZERO");
	deny_io_uring();
	z = start(method, 0, 0, r);
	ck_assert_int_eq(l1_zero_uses_uring(z), 0);
	ck_assert_str_eq(l1_zero_method_name(z),
			 "memset (io_uring unavailable: setup: ENOSYS)");
	zero_region(z, r, p, len, 3 * MiB);
	l1_zero_stop(z);
	munmap(p, len);
	free(r);
}

START_TEST(test_fallback_seccomp)
{
	fallback_seccomp(L1_ZERO_AUTO, NULL);
}
END_TEST

/* asked for io_uring by name: still falls back rather than fail */
START_TEST(test_fallback_seccomp_forced_uring)
{
	fallback_seccomp(L1_ZERO_MEMSET, "uring");
}
END_TEST

static void stop_pending(int32_t method)
{
	struct rec *r = rec_new();
	static struct l1_zero_extent e[MAX_EXT];
	uint64_t len = 192 * MiB;
	char *p = map_anon(len);
	struct l1_zero *z = start(method, 0, 0, r);
	uint32_t n = make_extents(r, p, len, 2 * MiB - 4096, e, MAX_EXT);

	ck_assert_int_eq(l1_zero_submit(z, e, n), 0);
	l1_zero_stop(z);                /* drains: everything reaches done() */
	check_all_once(r, n);
	ck_assert(l1t_is_zero(p, len));
	munmap(p, len);
	free(r);
}

START_TEST(test_stop_pending_uring)
{
	stop_pending(L1_ZERO_AUTO);
}
END_TEST

START_TEST(test_stop_pending_memset)
{
	stop_pending(L1_ZERO_MEMSET);
}
END_TEST

/* More jobs than the engine works on at once (1024), in one submit. */
START_TEST(test_queue_overflow)
{
	struct rec *r = rec_new();
	static struct l1_zero_extent e[MAX_EXT];
	uint32_t n = 6000;
	uint64_t len = n * 8 * KiB;
	char *p = map_anon(len);
	struct l1_zero *z = start(L1_ZERO_AUTO, 0, 0, r);

	l1t_fill(p, len, 5);
	for (uint32_t i = 0; i < n; i++) {
		e[i] = (struct l1_zero_extent){ .slot = i, .gen = ~i,
						.ptr = p + i * 8 * KiB, .len = 8 * KiB };
		r->want[i] = e[i];
	}
	/* in uneven chunks, to grow the queue while it wraps */
	for (uint32_t i = 0; i < n; i += 777) {
		uint32_t k = n - i < 777 ? n - i : 777;
		ck_assert_int_eq(l1_zero_submit(z, e + i, k), 0);
	}
	ck_assert_int_eq(l1_zero_flush(z, 60000), 0);
	check_all_once(r, n);
	ck_assert(l1t_is_zero(p, len));
	l1_zero_stop(z);
	munmap(p, len);
	free(r);
}
END_TEST

/* A real short read on any kernel: one read is capped at MAX_RW_COUNT
 * (2 GiB - 4 KiB), so a piece just over 2 GiB comes back short and the
 * engine must resubmit the rest (as it must for hugetlbfs short reads). */
START_TEST(test_short_read)
{
	struct rec *r = rec_new();
	uint64_t len = 2048 * MiB + 8 * MiB;
	char *p = map_anon(len);
	struct l1_zero_extent e = { .slot = 3, .gen = 33, .ptr = p, .len = len };
	struct l1_zero *z = start(L1_ZERO_AUTO, len, 0, r);
	struct l1_zero_stats s;

	if (!l1_zero_uses_uring(z)) {
		fprintf(stderr, "check_zero: short_read skipped: %s\n",
			l1_zero_method_name(z));
		goto out;
	}
	/* the pattern at both ends and at the cap is enough to tell */
	memset(p, 0xee, len);
	r->want[3] = e;
	ck_assert_int_eq(l1_zero_submit(z, &e, 1), 0);
	ck_assert_int_eq(l1_zero_flush(z, 120000), 0);
	ck_assert_uint_eq(r->times[3], 1);
	ck_assert_int_eq(r->bad, 0);
	ck_assert(l1t_is_zero(p, len));
	l1_zero_get_stats(z, &s);
	ck_assert_uint_ge(s.short_reads, 1);
	ck_assert_uint_eq(s.zeroed_bytes, len);
out:
	l1_zero_stop(z);
	munmap(p, len);
	free(r);
}
END_TEST

/* hugetlbfs: the memory the pool really uses, where reads from /dev/zero
 * can come back short; the engine must finish them all the same. */
START_TEST(test_hugetlbfs)
{
	struct rec *r;
	char path[512];
	uint64_t len = 64 * MiB;
	struct l1_zero *z;
	struct l1_zero_stats s;
	const char *dir = getenv("L1_TEST_DIR");
	char *p;
	int fd;

	if (!l1t_on_hugetlbfs() || !dir) {
		fprintf(stderr, "check_zero: hugetlbfs test skipped "
			"(no L1_TEST_HUGETLBFS=1; run via tests/run.sh as root)\n");
		return;
	}
	r = rec_new();
	snprintf(path, sizeof path, "%s/zero-%d", dir, (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	unlink(path);
	ck_assert_msg(fallocate(fd, 0, 0, (off_t)len) == 0, "fallocate: %s",
		      strerror(errno));
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_msg(p != MAP_FAILED, "mmap hugetlbfs: %s", strerror(errno));
	z = start(L1_ZERO_AUTO, 0, 0, r);
	check_method(z);
	for (int round = 0; round < 4; round++) {
		memset(r->times, 0, sizeof r->times);
		r->seen = 0;
		zero_region(z, r, p, len, round & 1 ? 2 * MiB : 6 * MiB + 4096);
	}
	l1_zero_get_stats(z, &s);
	fprintf(stderr, "check_zero: hugetlbfs: %s, %llu short reads resubmitted\n",
		l1_zero_method_name(z), (unsigned long long)s.short_reads);
	l1_zero_stop(z);
	munmap(p, len);
	close(fd);
	free(r);
}
END_TEST

/* wait_progress: returns once the oldest pending extent is done, not all:
 * with done() held on the first extent it times out, released it returns
 * with that one reported; with nothing pending it returns at once. */
START_TEST(test_wait_progress)
{
	struct rec *r = rec_new();
	uint64_t big = 64 * MiB;
	char *p = map_anon(big + 4096);
	struct l1_zero_extent e[2] = {
		{ .slot = 0, .gen = 1, .ptr = p + big, .len = 4096 },
		{ .slot = 1, .gen = 2, .ptr = p, .len = big },
	};
	struct l1_zero *z = start(L1_ZERO_AUTO, 0, 0, r);

	r->want[0] = e[0];
	r->want[1] = e[1];
	ck_assert_int_eq(l1_zero_wait_progress(z, 0), 0);      /* nothing pending */
	r->gate = 1;
	ck_assert_int_eq(l1_zero_submit(z, &e[0], 1), 0);
	sem_wait(&r->entered);          /* done() of the first is held */
	ck_assert_int_eq(l1_zero_submit(z, &e[1], 1), 0);
	ck_assert_int_eq(l1_zero_wait_progress(z, 0), -ETIMEDOUT);
	sem_post(&r->release);
	ck_assert_int_eq(l1_zero_wait_progress(z, 120000), 0);
	ck_assert_uint_eq(r->times[0], 1);
	ck_assert_int_eq(l1_zero_flush(z, 120000), 0);
	check_all_once(r, 2);
	ck_assert(l1t_is_zero(p, big + 4096));
	ck_assert_int_eq(l1_zero_wait_progress(z, 0), 0);
	l1_zero_stop(z);
	munmap(p, big + 4096);
	free(r);
}
END_TEST

static Suite *zero_suite(void)
{
	Suite *s = suite_create("zero");
	struct {
		const char *name;
		const TTest *t;
	} cases[] = {
		{ "anon_auto", test_anon_auto },
		{ "many_in_flight", test_many_in_flight },
		{ "coalesce_bounds", test_coalesce_bounds },
		{ "batch_cookies_uring", test_batch_cookies_uring },
		{ "batch_cookies_memset", test_batch_cookies_memset },
		{ "zero_length", test_zero_length },
		{ "bad_args", test_bad_args },
		{ "large_async_uring", test_large_async_uring },
		{ "large_async_memset", test_large_async_memset },
		{ "flush", test_flush },
		{ "flush_threads", test_flush_threads },
		{ "wait_progress", test_wait_progress },
		{ "progress_uring", test_progress_uring },
		{ "progress_memset", test_progress_memset },
		{ "memset_forced_opts", test_memset_forced_opts },
		{ "memset_forced_env", test_memset_forced_env },
		{ "uring_forced_env", test_uring_forced_env },
		{ "fallback_seccomp", test_fallback_seccomp },
		{ "fallback_seccomp_forced_uring", test_fallback_seccomp_forced_uring },
		{ "stop_pending_uring", test_stop_pending_uring },
		{ "stop_pending_memset", test_stop_pending_memset },
		{ "queue_overflow", test_queue_overflow },
		{ "short_read", test_short_read },
		{ "hugetlbfs", test_hugetlbfs },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		TCase *tc = tcase_create(cases[i].name);
		tcase_set_timeout(tc, 120);
		tcase_add_test(tc, cases[i].t);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	return l1t_run_suite(zero_suite());
}
