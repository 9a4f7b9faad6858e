/*
 * roles.c - the three kinds of worker process of the KV demo.  Each attaches
 * its own handle to the pool (after fork, so the client table carries its
 * pid), loops until the driver sets stats->stop, and counts what it did in
 * the shared stats page with relaxed atomics.
 *
 *   writer   request after request: allocate the full chunks in one batch
 *            and the partial last chunk in another (LMCache's batched
 *            allocate), fill, publish every object under its key, then
 *            announce the request (requests[w]) so readers may look for it.
 *            A full pool is not an error: it waits for the evictor.
 *   reader   picks an announced request of a writer, Zipf-skewed toward the
 *            newest, and one of its objects, and reads it in turn by key
 *            (l1_hold_key), through the view (open + mmap or read of
 *            keys/NAME) and zero-copy by path (l1_open_path); checks every
 *            byte.  A missing object was evicted: a miss, not an error.
 *   evictor  when used > watermark x total, frees the oldest published
 *            objects (by publish time) until used <= low x total; and when
 *            a writer found no room below the watermark (no free run long
 *            enough, or lazy growth refused for want of huge pages), frees
 *            the oldest until that much is free, as LMCache evicts on an
 *            allocation failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvdemo.h"

#define FULL_WAIT_NS (60ull * 1000000000ull)   /* a pool full this long is stuck */

static void nap_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
	nanosleep(&ts, NULL);
}

static int stopping(struct kv_stats *s)
{
	return atomic_load_explicit(&s->stop, memory_order_relaxed);
}

struct l1_arena *kv_attach(const struct kv_opts *o, struct kv_stats *s, const char *who)
{
	struct l1_open_opts op;
	struct l1_arena *a;
	l1_open_opts_init(&op);
	op.pin = L1_PIN_OFF;
	int r = l1_arena_open(o->arena, &op, &a);
	if (r) {
		kv_error(s, "%s cannot attach to the pool: %s", who, l1_last_error());
		return NULL;
	}
	return a;
}

/* ---- writer ------------------------------------------------------------ */

/* Allocates count objects of obj->layout, waiting while the pool is full.
 * 0, 1 when asked to stop while waiting, -1 on error. */
static int alloc_wait(struct l1_arena *a, struct kv_stats *s, int w,
		      const struct kv_object *obj, uint32_t count, struct l1_obj *out)
{
	uint64_t t_first = 0;
	for (;;) {
		uint64_t t0 = kv_now_ns();
		int r = l1_alloc(a, &obj->layout, count, out);
		uint64_t t1 = kv_now_ns();
		atomic_fetch_add_explicit(&s->alloc_calls, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->alloc_ns, t1 - t0, memory_order_relaxed);
		uint64_t us = (t1 - t0) / 1000;
		unsigned b = us ? 64 - (unsigned)__builtin_clzll(us) : 0;
		atomic_fetch_add_explicit(&s->alloc_hist[b < 31 ? b : 31], 1, memory_order_relaxed);
		if (r == 0)
			return 0;
		if (r == -ENOSPC && strstr(l1_last_error(), "layout")) {
			kv_error(s, "writer %d: the pool's layout table is full (%s): destroy and "
				 "recreate the pool (L1_RUN_FORCE=1)", w, l1_last_error());
			return -1;
		}
		if (r != -ENOMEM && r != -ENOSPC) {
			kv_error(s, "writer %d: cannot allocate %u x %llu bytes: %s", w, count,
				 (unsigned long long)obj->bytes, l1_last_error());
			return -1;
		}
		if (!t_first)
			t_first = t1;
		if (t1 - t_first > FULL_WAIT_NS) {
			kv_error(s, "writer %d: the pool stayed full for 60 s (%s); the evictor "
				 "should have made room", w, l1_last_error());
			return -1;
		}
		atomic_fetch_add_explicit(&s->alloc_waits, 1, memory_order_relaxed);
		atomic_store_explicit(&s->want_room, count * obj->bytes, memory_order_relaxed);
		if (stopping(s))
			return 1;
		nap_us(2000);
	}
}

/* Fills and publishes objs[0..n) = objects first.. of request r. */
static int fill_publish(struct l1_arena *a, const struct kv_opts *o, struct kv_stats *s,
			int w, uint64_t r, const struct kv_request *q, uint32_t first,
			struct l1_obj *objs, uint32_t n)
{
	struct kv_object obj;
	for (uint32_t i = 0; i < n; i++) {
		kv_object_of(o->run, (uint32_t)w, r, q, first + i, &obj);
		if (objs[i].size < obj.bytes) {
			kv_error(s, "writer %d: object %llu has %llu bytes, its layout needs %llu", w,
				 (unsigned long long)objs[i].id, (unsigned long long)objs[i].size,
				 (unsigned long long)obj.bytes);
			return -1;
		}
		kv_fill(objs[i].ptr, obj.bytes, obj.seed);
		int e = l1_publish(a, objs[i].id, obj.key);
		if (e) {
			kv_error(s, "writer %d: cannot publish %s: %s", w, obj.key, l1_last_error());
			return -1;
		}
		atomic_fetch_add_explicit(&s->objs_written, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->bytes_written, obj.bytes, memory_order_relaxed);
	}
	return 0;
}

int kv_writer(const struct kv_opts *o, struct kv_stats *s, int w)
{
	struct l1_arena *a = kv_attach(o, s, "writer");
	struct l1_obj *objs;
	int rc = 0;
	if (!a)
		return 1;
	uint32_t batch = 0;             /* the largest allocate of any request */
	for (unsigned i = 0; i < kv_nmodels; i++) {
		uint32_t b = kv_models[i].max_chunks * (kv_models[i].layerwise ?
							kv_models[i].layers : 1);
		batch = b > batch ? b : batch;
	}
	objs = calloc(batch, sizeof *objs);
	if (!objs) {
		kv_error(s, "writer %d: out of memory", w);
		l1_arena_close(a);
		return 1;
	}
	uint64_t t0 = kv_now_ns(), written = 0;
	for (uint64_t r = 0; !stopping(s) && !rc; r++) {
		struct kv_request q;
		struct kv_object obj;
		kv_request_of(o->run, (uint32_t)w, r, &q);
		uint32_t per_chunk = q.m->layerwise ? q.m->layers : 1;
		/* the full chunks in one batch, the partial last one in another */
		for (uint32_t c = 0; c < q.nchunks && !rc;) {
			uint32_t nch = c + 1 < q.nchunks ? q.nchunks - 1 - c : 1;
			uint32_t first = c * per_chunk, n = nch * per_chunk;
			kv_object_of(o->run, (uint32_t)w, r, &q, first, &obj);
			int e = alloc_wait(a, s, w, &obj, n, objs);
			if (e) {
				rc = e < 0;
				goto out;       /* asked to stop: this request stays unannounced */
			}
			if (fill_publish(a, o, s, w, r, &q, first, objs, n)) {
				rc = 1;
				break;
			}
			written += n * obj.bytes;
			c += nch;
		}
		/* pace to --write-rate, as a GPU's prefill would */
		if (o->write_rate > 0) {
			double secs = (double)written / (o->write_rate * 1048576.0);
			uint64_t due = t0 + (uint64_t)(secs * 1e9);
			while (!stopping(s) && kv_now_ns() < due)
				nap_us(1000);
		}
		if (!rc)
			atomic_store_explicit(&s->requests[w], r + 1, memory_order_release);
	}
out:
	free(objs);
	l1_arena_close(a);
	return rc;
}

/* ---- reader ------------------------------------------------------------ */

enum { RD_KEY, RD_VIEW, RD_ZC, RD_MODES };

static int check(struct kv_stats *s, int rd, const char *how, const struct kv_object *obj,
		 const void *p, uint64_t size)
{
	if (size < obj->bytes) {
		kv_error(s, "reader %d: %s: %s has %llu bytes, its layout needs %llu", rd, how,
			 obj->key, (unsigned long long)size, (unsigned long long)obj->bytes);
		return -1;
	}
	uint64_t bad = kv_verify(p, obj->bytes, obj->seed);
	if (bad) {
		kv_error(s, "reader %d: %s: %s differs from what its writer wrote at byte %llu",
			 rd, how, obj->key, (unsigned long long)(bad - 1));
		return -1;
	}
	atomic_fetch_add_explicit(&s->rd_bytes, obj->bytes, memory_order_relaxed);
	return 0;
}

/* 1 miss, 0 read and checked, -1 error. */
static int read_key(struct l1_arena *a, struct kv_stats *s, int rd, const struct kv_object *obj)
{
	struct l1_obj h;
	int r = l1_hold_key(a, obj->key, &h);
	if (r == -ENOENT || r == -EALREADY)
		return 1;
	if (r) {
		kv_error(s, "reader %d: cannot hold %s: %s", rd, obj->key, l1_last_error());
		return -1;
	}
	r = check(s, rd, "by key", obj, h.ptr, h.size);
	l1_release(a, h.id);
	if (!r)
		atomic_fetch_add_explicit(&s->rd_key, 1, memory_order_relaxed);
	return r;
}

static int read_view(struct kv_stats *s, int rd, const char *path, const struct kv_object *obj,
		     char *buf, int use_mmap)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = -1;
	if (fd < 0 && (errno == ENOENT || errno == ESTALE))
		return 1;
	if (fd < 0) {
		kv_error(s, "reader %d: cannot open %s: %s", rd, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < obj->bytes) {
		kv_error(s, "reader %d: %s has %lld bytes, its layout needs %llu", rd, path,
			 (long long)st.st_size, (unsigned long long)obj->bytes);
		goto out;
	}
	if (use_mmap) {
		void *p = mmap(NULL, obj->bytes, PROT_READ, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			kv_error(s, "reader %d: cannot mmap %s: %s", rd, path, strerror(errno));
			goto out;
		}
		r = check(s, rd, "view mmap", obj, p, obj->bytes);
		munmap(p, obj->bytes);
	} else {
		uint64_t got = 0;
		while (got < obj->bytes) {
			ssize_t n = pread(fd, buf + got, obj->bytes - got, (off_t)got);
			if (n <= 0) {
				kv_error(s, "reader %d: reading %s stopped at byte %llu: %s", rd, path,
					 (unsigned long long)got, n ? strerror(errno) : "end of file");
				goto out;
			}
			got += (uint64_t)n;
		}
		r = check(s, rd, "view read", obj, buf, got);
	}
	if (!r)
		atomic_fetch_add_explicit(use_mmap ? &s->rd_view_mmap : &s->rd_view_read, 1,
					  memory_order_relaxed);
out:
	close(fd);
	return r;
}

static int read_zc(struct l1_arena *a, struct kv_stats *s, int rd, const char *path,
		   const struct kv_object *obj)
{
	struct l1_obj h;
	int r = l1_open_path(a, path, &h);
	if (r == -ENOENT || r == -ESTALE || r == -EALREADY)    /* evicted meanwhile */
		return 1;
	if (r) {
		kv_error(s, "reader %d: l1_open_path(%s): %s", rd, path, l1_last_error());
		return -1;
	}
	r = check(s, rd, "zero-copy by path", obj, h.ptr, h.size);
	l1_release(a, h.id);
	if (!r)
		atomic_fetch_add_explicit(&s->rd_zc, 1, memory_order_relaxed);
	return r;
}

int kv_reader(const struct kv_opts *o, struct kv_stats *s, int rd)
{
	struct l1_arena *a = kv_attach(o, s, "reader");
	char *buf = NULL, name[512], path[1024];
	uint64_t rng = kv_mix(o->run ^ (uint64_t)(rd + 1000));
	int rc = 0;
	if (!a)
		return 1;
	if (o->view && !(buf = malloc(kv_max_object_bytes()))) {
		kv_error(s, "reader %d: out of memory", rd);
		l1_arena_close(a);
		return 1;
	}
	for (uint64_t it = 0; !stopping(s); it++) {
		rng = kv_mix(rng);
		uint32_t w = (uint32_t)(rng % (uint64_t)o->writers);
		uint64_t n = atomic_load_explicit(&s->requests[w], memory_order_acquire);
		if (n == 0) {
			nap_us(1000);
			continue;
		}
		double u = (double)(kv_mix(rng) >> 11) / 9007199254740992.0;
		uint64_t r = n - 1 - kv_zipf(n, o->zipf_s, u);
		struct kv_request q;
		struct kv_object obj;
		kv_request_of(o->run, w, r, &q);
		kv_object_of(o->run, w, r, &q, (uint32_t)((rng >> 20) % kv_request_objects(&q)),
			     &obj);
		int mode = o->view ? (int)(it % RD_MODES) : RD_KEY, e;
		if (mode != RD_KEY) {
			if (l1_key_view_name(obj.key, name, sizeof name) < 0) {
				kv_error(s, "reader %d: no view name for key %s", rd, obj.key);
				rc = 1;
				break;
			}
			snprintf(path, sizeof path, "%s/keys/%s", o->view, name);
		}
		if (mode == RD_KEY)
			e = read_key(a, s, rd, &obj);
		else if (mode == RD_VIEW)
			e = read_view(s, rd, path, &obj, buf, (it / RD_MODES) % 2 == 0);
		else
			e = read_zc(a, s, rd, path, &obj);
		if (e < 0) {
			rc = 1;
			break;
		}
		if (e > 0)
			atomic_fetch_add_explicit(&s->rd_miss, 1, memory_order_relaxed);
	}
	free(buf);
	l1_arena_close(a);
	return rc;
}

/* ---- evictor ----------------------------------------------------------- */

struct victim {
	uint64_t publish_ns, id, size;
};

static int by_age(const void *x, const void *y)
{
	const struct victim *a = x, *b = y;
	return a->publish_ns < b->publish_ns ? -1 : a->publish_ns > b->publish_ns;
}

/* Frees ids; a batch refused because one entry went away meanwhile is
 * retried one by one.  Returns the bytes freed, or -1 on a real error. */
static int64_t free_batch(struct l1_arena *a, struct kv_stats *s, const struct victim *v,
			  uint32_t n)
{
	uint64_t ids[64], bytes = 0;
	for (uint32_t i = 0; i < n; i++) {
		ids[i] = v[i].id;
		bytes += v[i].size;
	}
	int r = l1_free_ids(a, ids, n);
	if (r == 0) {
		atomic_fetch_add_explicit(&s->ev_objs, n, memory_order_relaxed);
		return (int64_t)bytes;
	}
	bytes = 0;
	for (uint32_t i = 0; i < n; i++) {
		r = l1_free_ids(a, &ids[i], 1);
		if (r == 0) {
			bytes += v[i].size;
			atomic_fetch_add_explicit(&s->ev_objs, 1, memory_order_relaxed);
		} else if (r != -EALREADY && r != -ESTALE && r != -ENOENT && r != -EPERM) {
			kv_error(s, "evictor: cannot free object %llu: %s",
				 (unsigned long long)ids[i], l1_last_error());
			return -1;
		}       /* else gone meanwhile, or another user's: not ours to evict */
	}
	return (int64_t)bytes;
}

/* One eviction pass: oldest published first until used <= target.
 * Returns the number of objects freed, or -1. */
static int64_t evict(struct l1_arena *a, struct kv_stats *s, struct l1_obj_info *info,
		 struct victim *v, uint64_t max, uint64_t used, uint64_t target)
{
	uint64_t cursor = 0, nv = 0;
	int n;
	while ((n = l1_obj_list(a, &cursor, info, 1024)) > 0)
		for (int i = 0; i < n && nv < max; i++)
			if (info[i].state == L1_STATE_PUBLISHED)
				v[nv++] = (struct victim){ info[i].publish_ns, info[i].obj.id,
							   info[i].obj.size };
	if (n < 0) {
		kv_error(s, "evictor: cannot list the objects: %s", l1_last_error());
		return -1;
	}
	qsort(v, nv, sizeof *v, by_age);
	uint64_t i = 0;
	while (i < nv && used > target) {
		uint32_t k = 0;
		uint64_t planned = 0;
		while (i + k < nv && k < 64 && used - planned > target)
			planned += v[i + k++].size;
		int64_t b = free_batch(a, s, v + i, k);
		if (b < 0)
			return -1;
		used = used > (uint64_t)b ? used - (uint64_t)b : 0;
		atomic_fetch_add_explicit(&s->ev_bytes, (uint64_t)b, memory_order_relaxed);
		i += k;
	}
	atomic_fetch_add_explicit(&s->ev_passes, 1, memory_order_relaxed);
	return (int64_t)i;
}

int kv_evictor(const struct kv_opts *o, struct kv_stats *s)
{
	struct l1_arena *a = kv_attach(o, s, "evictor");
	struct l1_usage u;
	int rc = 0;
	if (!a)
		return 1;
	l1_arena_usage(a, &u);
	struct l1_obj_info *info = malloc(1024 * sizeof *info);
	struct victim *v = malloc(u.max_objects * sizeof *v);
	if (!info || !v) {
		kv_error(s, "evictor: out of memory");
		rc = 1;
		goto out;
	}
	while (!stopping(s)) {
		uint64_t used, total, target;
		l1_get_memory_usage(a, &used, &total);
		uint64_t need = atomic_exchange_explicit(&s->want_room, 0, memory_order_relaxed);
		if ((double)used > o->watermark * (double)total) {
			target = (uint64_t)(o->low * (double)total);
		} else if (need) {
			target = used > need ? used - need : 0;
			atomic_fetch_add_explicit(&s->ev_pressure, 1, memory_order_relaxed);
		} else {
			nap_us(1000);
			continue;
		}
		int64_t n = evict(a, s, info, v, u.max_objects, used, target);
		if (n < 0) {
			rc = 1;
			break;
		}
		if (n == 0)             /* all in writers' hands: let them publish */
			nap_us(1000);
	}
out:
	free(info);
	free(v);
	l1_arena_close(a);
	return rc;
}
