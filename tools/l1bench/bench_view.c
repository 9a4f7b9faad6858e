/*
 * bench_view.c - scenario view: what the l1fs view costs.  On a pool with
 * 10 000 published objects (1 000 with --quick) and one 256 MiB object
 * (32 MiB), mounted by a fresh l1fs (this binary's sibling build/bin/l1fs,
 * or $L1FS_BIN) in a temporary directory, it measures, each beside a
 * baseline from the same run:
 *   - readdir + stat of every object (what `ls -l objects/` does) on the
 *     fresh mount, against the same on 10 000 files in a tmpfs directory
 *     (goal: under 0.3 s);
 *   - open + read + close of `stats` (`cat stats`), mean of many, against
 *     /proc/meminfo (goal: under 5 ms);
 *   - a sequential read of the big object through the view (1 MiB reads,
 *     page cache dropped first; median of 3), against memcpy of the same
 *     bytes from the pool (goal: at least 2 GB/s);
 *   - l1_open_path and a copy of the object from the pointer it returns
 *     (zero-copy: the copy is the reader's own), against the same memcpy
 *     (goal: at least 0.8x memcpy).
 * With --mount VIEW it uses that mount (and the pool its stats name)
 * instead of mounting its own, and removes what it added.  Unmounts and
 * removes everything it made, whatever happens.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define SCEN "view"
#define MiB (1ull << 20)
#define BATCH 1000u

struct view_run {
	struct l1_arena *a;
	int own_pool;
	char mnt[PATH_MAX];
	pid_t l1fs;
	uint64_t *ids;
	uint32_t nids;
	struct l1_obj big;
	char shm_dir[128];
};

static void l1fs_path(char *buf, size_t len)
{
	char exe[PATH_MAX];
	const char *env = getenv("L1FS_BIN");
	ssize_t n;

	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	exe[n > 0 ? n : 0] = 0;
	snprintf(buf, len, "%s/l1fs", n > 0 ? dirname(exe) : "build/bin");
}

static int mounted_view(const char *mnt)
{
	char line[4096], m[2048];
	int found = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "%*s %*s %*s %*s %2047s", m) == 1 && !strcmp(m, mnt) &&
		    strstr(line, " - fuse.l1fs "))
			found = 1;
	if (f)
		fclose(f);
	return found;
}

static int mount_view(const struct bench_ctx *c, struct view_run *v)
{
	char bin[PATH_MAX];
	struct stat st;

	l1fs_path(bin, sizeof bin);
	snprintf(v->mnt, sizeof v->mnt, "/tmp/l1bench-view.XXXXXX");
	if (!mkdtemp(v->mnt)) {
		bench_note(c, SCEN, "mkdtemp: %s", strerror(errno));
		v->mnt[0] = 0;
		return -1;
	}
	v->l1fs = fork();
	if (v->l1fs == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);      /* unmounts if we die */
		execl(bin, "l1fs", v->mnt, "--arena", l1_arena_path(v->a), "-f", "-o",
		      "gc_interval=2", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		if (waitpid(v->l1fs, NULL, WNOHANG) == v->l1fs) {
			v->l1fs = 0;
			break;
		}
		if (mounted_view(v->mnt) && stat(v->mnt, &st) == 0 && st.st_ino == 1)
			return 0;
		usleep(10000);
	}
	bench_note(c, SCEN, "%s did not mount the view (is /dev/fuse usable?)", bin);
	return -1;
}

static void unmount_view(struct view_run *v)
{
	if (v->l1fs > 0) {
		kill(v->l1fs, SIGTERM);
		for (int i = 0; i < 1000 && waitpid(v->l1fs, NULL, WNOHANG) != v->l1fs; i++)
			usleep(10000);
		if (kill(v->l1fs, 0) == 0) {
			kill(v->l1fs, SIGKILL);
			waitpid(v->l1fs, NULL, 0);
		}
		v->l1fs = 0;
	}
	if (v->mnt[0]) {
		if (mounted_view(v->mnt))
			umount2(v->mnt, MNT_DETACH);
		rmdir(v->mnt);
		v->mnt[0] = 0;
	}
}

/* The pool a mounted view shows, from the first line of its stats. */
static int pool_of_view(const char *mnt, char *path, size_t len)
{
	char f[PATH_MAX + 16], line[PATH_MAX + 64];
	snprintf(f, sizeof f, "%s/stats", mnt);
	FILE *s = fopen(f, "re");
	if (!s)
		return -errno;
	int r = fgets(line, sizeof line, s) && sscanf(line, "pool %4095s", path) == 1 ? 0 : -EINVAL;
	fclose(s);
	(void)len;
	return r;
}

static int fill_pool(const struct bench_ctx *c, struct view_run *v, uint32_t n, uint64_t big)
{
	struct l1_obj *o = malloc(BATCH * sizeof *o);
	int r = 0;

	v->ids = calloc(n, sizeof *v->ids);
	if (!o || !v->ids) {
		free(o);
		return -ENOMEM;
	}
	while (v->nids < n && r == 0) {
		uint32_t k = n - v->nids < BATCH ? n - v->nids : BATCH;
		r = l1_alloc_bytes(v->a, 4096, k, o);
		for (uint32_t i = 0; r == 0 && i < k; i++) {
			memset(o[i].ptr, (int)i, 64);
			v->ids[v->nids++] = o[i].id;
			r = l1_publish(v->a, o[i].id, NULL);
		}
	}
	free(o);
	if (r == 0)
		r = l1_alloc_bytes(v->a, big, 1, &v->big);
	if (r == 0) {
		uint64_t *w = v->big.ptr;
		for (uint64_t i = 0; i < big / 8; i++)
			w[i] = i * 0x9e3779b97f4a7c15ull;
		r = l1_publish(v->a, v->big.id, NULL);
	}
	if (r)
		bench_note(c, SCEN, "filling the pool: %s", l1_last_error());
	return r;
}

static void cleanup_pool(struct view_run *v)
{
	if (v->nids)
		l1_free_ids(v->a, v->ids, v->nids);
	if (v->big.id)
		l1_free_ids(v->a, &v->big.id, 1);
	free(v->ids);
	if (v->own_pool)
		bench_destroy(v->a);
	else
		l1_arena_close(v->a);
}

/* readdir + fstatat of every entry; returns seconds, or -1. */
static double list_dir(const char *path, uint64_t *count)
{
	struct stat st;
	struct dirent *e;
	uint64_t t0 = bench_now_ns(), n = 0;
	DIR *d = opendir(path);

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			n++;
	}
	closedir(d);
	*count = n;
	return (double)(bench_now_ns() - t0) / 1e9;
}

static int make_shm_files(struct view_run *v, uint32_t n)
{
	snprintf(v->shm_dir, sizeof v->shm_dir, "/dev/shm/l1bench-viewls-%d", (int)getpid());
	if (mkdir(v->shm_dir, 0700))
		return -errno;
	for (uint32_t i = 0; i < n; i++) {
		char p[192];
		snprintf(p, sizeof p, "%s/%u", v->shm_dir, i);
		int fd = open(p, O_CREAT | O_WRONLY, 0600);
		if (fd < 0)
			return -errno;
		close(fd);
	}
	return 0;
}

static void remove_shm_files(struct view_run *v)
{
	DIR *d;
	struct dirent *e;
	if (!v->shm_dir[0] || !(d = opendir(v->shm_dir)))
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(v->shm_dir);
}

/* Mean seconds for open+read+close of a small file. */
static double cat_file(const char *path, unsigned iters)
{
	char buf[65536];
	uint64_t t0 = bench_now_ns();
	for (unsigned i = 0; i < iters; i++) {
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			return -1;
		while (read(fd, buf, sizeof buf) > 0)
			;
		close(fd);
	}
	return (double)(bench_now_ns() - t0) / 1e9 / iters;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Sequential 1 MiB reads of the whole file, page cache dropped; GB/s. */
static double read_view(const char *path, char *buf, uint64_t size)
{
	int fd = open(path, O_RDONLY);
	uint64_t got = 0, t0;
	if (fd < 0)
		return -1;
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	t0 = bench_now_ns();
	while (got < size) {
		ssize_t r = read(fd, buf + got, size - got < MiB ? size - got : MiB);
		if (r <= 0)
			break;
		got += (uint64_t)r;
	}
	double s = (double)(bench_now_ns() - t0) / 1e9;
	close(fd);
	return got == size ? (double)size / s / 1e9 : -1;
}

static double memcpy_gbs(char *dst, const void *src, uint64_t size)
{
	uint64_t t0 = bench_now_ns();
	memcpy(dst, src, size);
	__asm__ volatile("" ::: "memory");
	return (double)size / ((double)(bench_now_ns() - t0) / 1e9) / 1e9;
}

static int content_ok(const char *buf, uint64_t size)
{
	const uint64_t *w = (const uint64_t *)buf;
	for (uint64_t i = 0; i < size / 8; i += 4099)
		if (w[i] != i * 0x9e3779b97f4a7c15ull)
			return 0;
	return w[size / 8 - 1] == (size / 8 - 1) * 0x9e3779b97f4a7c15ull;
}

static void measure(const struct bench_ctx *c, struct view_run *v, uint32_t n, uint64_t big)
{
	char path[PATH_MAX + 64];
	uint64_t cnt = 0, cnt0 = 0;
	char goal[64];

	/* listing: fresh view, nothing cached for these names */
	snprintf(path, sizeof path, "%s/objects", v->mnt);
	double t = list_dir(path, &cnt);
	double warm = list_dir(path, &cnt0);
	double base = -1;
	if (make_shm_files(v, n) == 0)
		base = list_dir(v->shm_dir, &cnt0);
	remove_shm_files(v);
	snprintf(goal, sizeof goal, "< 0.3 s for 10000");
	if (cnt < n)
		bench_note(c, SCEN, "listing saw %" PRIu64 " of %u objects", cnt, n);
	bench_report(c, SCEN, "ls -l objects/ (readdir+stat, cold)", t, "s",
		     base >= 0 ? "same on tmpfs" : NULL, base, goal,
		     n == 10000 ? t < 0.3 && cnt >= n : -1);
	bench_report(c, SCEN, "ls -l objects/ (again, cached)", warm, "s", NULL, 0, NULL, -1);

	/* cat stats */
	snprintf(path, sizeof path, "%s/stats", v->mnt);
	unsigned iters = c->iters ? (unsigned)c->iters : 200;
	double st = cat_file(path, iters);
	double pm = cat_file("/proc/meminfo", iters);
	bench_report(c, SCEN, "cat stats", st * 1e3, "ms", "cat /proc/meminfo", pm * 1e3,
		     "< 5 ms", st >= 0 && st < 0.005);

	/* sequential read of the big object */
	char *buf = malloc(big);
	if (!buf) {
		bench_note(c, SCEN, "no memory for a %" PRIu64 " MiB buffer", big >> 20);
		return;
	}
	memset(buf, 1, big);
	snprintf(path, sizeof path, "%s/objects/%" PRIu64, v->mnt, v->big.id);
	double rv[3], mc[3];
	int ok = 1;
	for (int i = 0; i < 3; i++) {
		rv[i] = read_view(path, buf, big);
		ok &= rv[i] > 0 && content_ok(buf, big);
		mc[i] = memcpy_gbs(buf, v->big.ptr, big);
	}
	qsort(rv, 3, sizeof rv[0], cmp_double);
	qsort(mc, 3, sizeof mc[0], cmp_double);
	if (!ok)
		bench_note(c, SCEN, "read through the view failed or returned wrong bytes");
	char metric[64];
	snprintf(metric, sizeof metric, "read %" PRIu64 " MiB via view", big >> 20);
	bench_report(c, SCEN, metric, ok ? rv[1] : 0, "GB/s", "memcpy", mc[1], ">= 2 GB/s",
		     ok && rv[1] >= 2.0);

	/* open by path: zero-copy, so the copy out is the reader's choice */
	double op[3];
	ok = 1;
	for (int i = 0; i < 3; i++) {
		struct l1_obj o;
		uint64_t t0 = bench_now_ns();
		int r = l1_open_path(v->a, path, &o);
		if (r == 0) {
			memcpy(buf, o.ptr, o.size);
			__asm__ volatile("" ::: "memory");
			l1_release(v->a, o.id);
		}
		op[i] = (double)big / ((double)(bench_now_ns() - t0) / 1e9) / 1e9;
		ok &= r == 0 && o.ptr == v->big.ptr && content_ok(buf, big);
		mc[i] = memcpy_gbs(buf, v->big.ptr, big);
	}
	qsort(op, 3, sizeof op[0], cmp_double);
	qsort(mc, 3, sizeof mc[0], cmp_double);
	if (!ok)
		bench_note(c, SCEN, "l1_open_path failed: %s", l1_last_error());
	snprintf(metric, sizeof metric, "l1_open_path + copy %" PRIu64 " MiB", big >> 20);
	bench_report(c, SCEN, metric, ok ? op[1] : 0, "GB/s", "memcpy", mc[1],
		     ">= 0.8x memcpy", ok && op[1] >= 0.8 * mc[1]);
	free(buf);
}

int bench_view(const struct bench_ctx *c)
{
	struct view_run v;
	uint32_t n = c->quick ? 1000 : 10000;
	uint64_t big = (c->quick ? 32 : 256) * MiB;
	int r = 1;

	memset(&v, 0, sizeof v);
	if (c->view) {
		char pool[PATH_MAX];
		if (pool_of_view(c->view, pool, sizeof pool) ||
		    l1_arena_open(pool, NULL, &v.a)) {
			bench_note(c, SCEN, "%s is not an l1fs view whose pool this process can open",
				   c->view);
			return 1;
		}
	} else {
		/* room for n objects: the default record count, one per 64 KiB,
		 * is short of 10 000 small ones */
		v.a = bench_create_objs(c, SCEN, big + n * 4096ull + 64 * MiB, 0, 1, n + 1024ull);
		if (!v.a)
			return 1;
		v.own_pool = 1;
	}
	if (fill_pool(c, &v, n, big))
		goto out;
	if (c->view)
		snprintf(v.mnt, sizeof v.mnt, "%s", c->view);
	else if (mount_view(c, &v))
		goto out;
	bench_note(c, SCEN, "%u objects of 4 KiB and one of %" PRIu64 " MiB; view at %s%s", n,
		   big >> 20, v.mnt, c->view ? " (given)" : "");
	measure(c, &v, n, big);
	r = 0;
out:
	if (!c->view)
		unmount_view(&v);
	cleanup_pool(&v);
	remove_shm_files(&v);
	return r;
}
