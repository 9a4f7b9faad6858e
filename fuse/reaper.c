/*
 * reaper.c - the view's housekeeping thread.  Every gc_interval_ms it runs
 * l1_arena_gc (unpublished objects of dead writers, dirty extents a dead or
 * stopped process was zeroing, holds and client slots of dead processes: l1fs
 * is the pool's periodic collector; "dead" is the kernel's word, from the
 * lock each client holds on the pool file, so writers in other PID or mount
 * namespaces than the view's are judged right), then compares the live objects with the last
 * pass and tells the kernel to forget the names of those that went away
 * (objects/ID, meta/ID, keys/KEY), so an object freed by another process
 * vanishes from cached lookups without waiting for the entry timeout.
 *
 * The thread owns fs->reaper_seen; reaper_lock/reaper_cond only carry the
 * stop request, so stopping is prompt.  It sends notifications from its own
 * thread, never from a request handler (that could deadlock on a directory
 * lock the kernel holds for the request).
 */
#include "l1fs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIST_BATCH 1024

struct seen_ent {
	uint64_t id;
	char *keyname;                  /* encoded keys/ name, or NULL */
};

struct seen {
	struct seen_ent *v;
	size_t n, cap;
};

static void seen_free(struct seen *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i].keyname);
	free(s->v);
	free(s);
}

static int cmp_ent(const void *a, const void *b)
{
	uint64_t x = ((const struct seen_ent *)a)->id, y = ((const struct seen_ent *)b)->id;
	return x < y ? -1 : x > y;
}

static struct seen *seen_take(struct l1fs *fs)
{
	struct l1_obj_info *batch = malloc(LIST_BATCH * sizeof *batch);
	struct seen *s = calloc(1, sizeof *s);
	uint64_t cursor = 0;
	int n;

	if (!batch || !s)
		goto fail;
	while ((n = l1_obj_list(fs->arena, &cursor, batch, LIST_BATCH)) > 0) {
		for (int i = 0; i < n; i++) {
			const struct l1_obj_info *oi = &batch[i];
			if (!l1fs_state_listed(oi->state) || !l1fs_id_nameable(oi->obj.id))
				continue;
			if (s->n == s->cap) {
				size_t cap = s->cap ? s->cap * 2 : 1024;
				struct seen_ent *v = realloc(s->v, cap * sizeof *v);
				if (!v)
					goto fail;
				s->v = v;
				s->cap = cap;
			}
			struct seen_ent *e = &s->v[s->n++];
			char enc[NAME_MAX + 1];
			e->id = oi->obj.id;
			e->keyname = NULL;
			if (oi->state == L1_STATE_PUBLISHED && oi->key[0] &&
			    l1fs_key_encode(oi->key, enc, sizeof enc) > 0)
				e->keyname = strdup(enc);
		}
	}
	if (n < 0)
		goto fail;
	free(batch);
	if (s->n)
		qsort(s->v, s->n, sizeof *s->v, cmp_ent);
	return s;
fail:
	free(batch);
	seen_free(s);
	return NULL;
}

static void forget_gone(struct l1fs *fs, const struct seen_ent *e)
{
	char name[24];
	int n = snprintf(name, sizeof name, "%llu", (unsigned long long)e->id);

	fuse_lowlevel_notify_inval_entry(fs->se, L1FS_INO_OBJECTS, name, (size_t)n);
	fuse_lowlevel_notify_inval_entry(fs->se, L1FS_INO_META, name, (size_t)n);
	if (e->keyname)
		fuse_lowlevel_notify_inval_entry(fs->se, L1FS_INO_KEYS, e->keyname,
						 strlen(e->keyname));
	pthread_mutex_lock(&fs->cache_lock);
	l1fs_idset_take(&fs->cached, e->id);
	pthread_mutex_unlock(&fs->cache_lock);
	atomic_fetch_add(&fs->invalidated, 1);
}

/* Objects in old and not in now (both sorted by id). */
static void diff_and_forget(struct l1fs *fs, const struct seen *old, const struct seen *now)
{
	size_t j = 0;

	for (size_t i = 0; i < old->n; i++) {
		while (j < now->n && now->v[j].id < old->v[i].id)
			j++;
		if (j < now->n && now->v[j].id == old->v[i].id) {
			const char *a = old->v[i].keyname, *b = now->v[j].keyname;
			/* same object, key gone or changed: forget the old name */
			if (a && (!b || strcmp(a, b)))
				fuse_lowlevel_notify_inval_entry(fs->se, L1FS_INO_KEYS,
								 a, strlen(a));
			continue;
		}
		forget_gone(fs, &old->v[i]);
	}
}

static void reap_once(struct l1fs *fs)
{
	struct l1_gc_result r;
	struct timespec now;

	memset(&r, 0, sizeof r);
	if (l1fs_intact(fs) < 0)        /* periodically, even when nobody asks */
		return;
	if (l1_arena_gc(fs->arena, &r) < 0) {
		atomic_fetch_add(&fs->gc_errors, 1);
	} else {
		atomic_fetch_add(&fs->gc_objects, r.objects_reclaimed);
		atomic_fetch_add(&fs->gc_bytes, r.bytes_reclaimed);
		atomic_fetch_add(&fs->gc_dirty, r.dirty_requeued);
		atomic_fetch_add(&fs->gc_holds, r.holds_dropped);
		atomic_fetch_add(&fs->gc_clients, r.clients_dropped);
	}
	clock_gettime(CLOCK_REALTIME, &now);
	atomic_store(&fs->gc_last_ns, (uint64_t)now.tv_sec * 1000000000ull +
				      (uint64_t)now.tv_nsec);
	atomic_fetch_add(&fs->gc_runs, 1);

	struct seen *s = seen_take(fs);
	if (!s)
		return;
	if (fs->reaper_seen)
		diff_and_forget(fs, fs->reaper_seen, s);
	seen_free(fs->reaper_seen);
	fs->reaper_seen = s;
}

static void *reaper_main(void *arg)
{
	struct l1fs *fs = arg;
	struct timespec until;

	reap_once(fs);  /* leftovers of dead processes, and the first listing */
	pthread_mutex_lock(&fs->reaper_lock);
	while (!fs->reaper_stop) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += fs->gc_interval_ms / 1000;
		until.tv_nsec += (long)(fs->gc_interval_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!fs->reaper_stop &&
		       pthread_cond_timedwait(&fs->reaper_cond, &fs->reaper_lock, &until) != ETIMEDOUT)
			;
		if (fs->reaper_stop)
			break;
		pthread_mutex_unlock(&fs->reaper_lock);
		reap_once(fs);
		pthread_mutex_lock(&fs->reaper_lock);
	}
	pthread_mutex_unlock(&fs->reaper_lock);
	return NULL;
}

int l1fs_reaper_start(struct l1fs *fs)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	int r;

	if (!fs->gc_interval_ms)
		return 0;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->reaper_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&fs->reaper_lock, NULL);
	fs->reaper_stop = 0;
	/* signals belong to the session loop's thread, as libfuse's workers */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = pthread_create(&fs->reaper, NULL, reaper_main, fs);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return -r;
	fs->reaper_started = 1;
	return 0;
}

void l1fs_reaper_stop(struct l1fs *fs)
{
	if (!fs->reaper_started)
		return;
	pthread_mutex_lock(&fs->reaper_lock);
	fs->reaper_stop = 1;
	pthread_cond_signal(&fs->reaper_cond);
	pthread_mutex_unlock(&fs->reaper_lock);
	pthread_join(fs->reaper, NULL);
	fs->reaper_started = 0;
	seen_free(fs->reaper_seen);
	fs->reaper_seen = NULL;
}
