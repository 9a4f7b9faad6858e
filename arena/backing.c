/*
 * backing.c - the file under the pool: telling hugetlbfs from other file
 * systems (statfs, as DPDK does), committing ranges with fallocate (which on
 * hugetlbfs takes huge pages now and fails cleanly with ENOSPC when none are
 * left, instead of a SIGBUS later), lazy growth of the committed prefix in
 * grow steps, and host setup: reserving huge pages through
 * /proc/sys/vm/nr_hugepages (or the per-size sysfs knob) and mounting a
 * hugetlbfs.  Growth runs under the pool lock; `committed` is published with
 * a release store after the pages exist, so no process touches a page that
 * is not there.  A growth that fails gives back what it got: hugetlbfs does
 * not undo a partial fallocate, so the range is punched out again (and the
 * bytes so returned are counted in the header, grow_returned).
 */
#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "internal.h"

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

int l1__backing_statfs(const char *path, uint64_t *hugepage_size, int *is_hugetlbfs)
{
	struct statfs sf;
	if (statfs(path, &sf) < 0)
		return -errno;
	*is_hugetlbfs = (uint64_t)sf.f_type == HUGETLBFS_MAGIC;
	*hugepage_size = *is_hugetlbfs ? (uint64_t)sf.f_bsize : 4096;
	return 0;
}

int l1__backing_commit(int fd, uint64_t off, uint64_t len)
{
	if (len == 0)
		return 0;
	if (fallocate(fd, 0, (off_t)off, (off_t)len) < 0)
		return -errno;
	return 0;
}

/* A failed commit of [off, off+len): punches it out again, so the pages it
 * got go back to the kernel.  The bytes given back (st_blocks before and
 * after, when the file system counts them; else the punched length). */
static uint64_t give_back(int fd, uint64_t off, uint64_t len)
{
	struct stat mid, after;
	int counted = fstat(fd, &mid) == 0;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
		return 0;
	if (counted && fstat(fd, &after) == 0 && mid.st_blocks >= after.st_blocks)
		return (uint64_t)(mid.st_blocks - after.st_blocks) * 512;
	return counted ? 0 : len;
}

/* Under the lock: commits grow steps until need_bytes more data bytes are
 * committed (or the pool is fully committed).  0 if anything grew. */
int l1__grow(struct l1_arena *a, uint64_t need_bytes)
{
	struct l1_hdr *h = a->h;
	uint64_t c = atomic_load(&h->committed);
	if (c >= h->data_size)
		return -ENOSPC;
	uint64_t target = c + (need_bytes > h->grow_step ? need_bytes : h->grow_step);
	target = (target + h->grow_step - 1) / h->grow_step * h->grow_step;
	if (target > h->data_size)
		target = h->data_size;
	int r = l1__backing_commit(a->fd, h->data_off + c, target - c);
	if (r) {
		uint64_t back = give_back(a->fd, h->data_off + c, target - c);
		atomic_fetch_add(&h->grow_failures, 1);
		atomic_fetch_add(&h->grow_returned, back);
		atomic_store(&h->grow_failed, 1);
		snprintf(h->grow_reason, sizeof h->grow_reason,
			 "growth past %llu MiB failed: %s%s; gave back %llu MiB",
			 (unsigned long long)(c >> 20), strerror(-r),
			 r == -ENOSPC && h->backing == L1_BACKING_HUGETLBFS
				 ? " (no free huge pages: l1ctl setup --hugepages N)" : "",
			 (unsigned long long)(back >> 20));
		return r;
	}
	atomic_store(&h->grow_failed, 0);
	snprintf(h->grow_reason, sizeof h->grow_reason, "committed %llu of %llu MiB",
		 (unsigned long long)(target >> 20), (unsigned long long)(h->data_size >> 20));
	atomic_store_explicit(&h->committed, target, memory_order_release);
	return 0;
}

/* The first hugetlbfs in /proc/mounts (of page_size, if non-zero), checked
 * with statfs; 0 and its mount point, or -ENOENT.  Private mounts under
 * /tmp (tests make them) are not a host's pool directory and are skipped. */
int l1__find_hugetlbfs(uint64_t page_size, char *out, size_t len)
{
	FILE *f = setmntent("/proc/mounts", "r");
	struct mntent *m;
	int r = -ENOENT;
	if (!f)
		return -errno;
	while ((m = getmntent(f))) {
		uint64_t ps = 0;
		int huge = 0;
		if (strcmp(m->mnt_type, "hugetlbfs") || !strncmp(m->mnt_dir, "/tmp/", 5) ||
		    l1__backing_statfs(m->mnt_dir, &ps, &huge) || !huge ||
		    (page_size && ps != page_size))
			continue;
		snprintf(out, len, "%s", m->mnt_dir);
		r = 0;
		break;
	}
	endmntent(f);
	return r;
}

/* ---- host setup -------------------------------------------------------- */

static int write_ulong(const char *path, unsigned long v)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	int r = fprintf(f, "%lu\n", v) < 0 ? -EIO : 0;
	if (fclose(f) != 0 && !r)
		r = -errno;
	return r;
}

static int read_ulong(const char *path, unsigned long *v)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	int r = fscanf(f, "%lu", v) == 1 ? 0 : -EIO;
	fclose(f);
	return r;
}

/* Is a hugetlbfs with this page size mounted at mnt? */
static int hugetlbfs_at(const char *mnt, uint64_t page_size)
{
	uint64_t ps = 0;
	int huge = 0;
	if (l1__backing_statfs(mnt, &ps, &huge) < 0)
		return 0;
	return huge && ps == page_size;
}

int l1_setup_hugepages(uint64_t page_size, uint64_t pages, const char *mountpoint,
		       char *msg, size_t len)
{
	char knob[128];
	unsigned long total = 0, free_pages = 0;
	size_t n = 0;
	if (!page_size)
		page_size = L1_HUGEPAGE_2M;
	if (page_size != L1_HUGEPAGE_2M && page_size != L1_HUGEPAGE_1G)
		return l1__err(-EINVAL, "huge page size must be 2M or 1G");
	if (!mountpoint)
		mountpoint = "/dev/hugepages";
	if (msg && len)
		msg[0] = 0;
	snprintf(knob, sizeof knob, "/sys/kernel/mm/hugepages/hugepages-%llukB/",
		 (unsigned long long)(page_size >> 10));
	char nr[192], fr[192];
	snprintf(nr, sizeof nr, "%snr_hugepages", knob);
	snprintf(fr, sizeof fr, "%sfree_hugepages", knob);
	if (read_ulong(nr, &total) < 0)
		return l1__err(-ENODEV, "this kernel has no %llu kB huge pages (%s missing)",
			       (unsigned long long)(page_size >> 10), nr);
	read_ulong(fr, &free_pages);
	if (pages > free_pages) {
		unsigned long want = total + (unsigned long)(pages - free_pages);
		int r = write_ulong(nr, want);
		if (r)
			return l1__err(r, "cannot raise %s to %lu: %s%s", nr, want, strerror(-r),
				       r == -EACCES || r == -EPERM ? " (run as root)" : "");
		read_ulong(nr, &total);
		read_ulong(fr, &free_pages);
		if (msg)
			n += snprintf(msg + n, n < len ? len - n : 0,
				      "huge pages: %lu reserved, %lu free. ", total, free_pages);
		if (free_pages < pages)
			return l1__err(-ENOMEM, "asked the kernel for %llu free huge pages, got %lu "
				       "(memory too fragmented or too small)",
				       (unsigned long long)pages, free_pages);
	} else if (msg) {
		n += snprintf(msg + n, n < len ? len - n : 0,
			      "huge pages: %lu free already. ", free_pages);
	}
	if (!hugetlbfs_at(mountpoint, page_size)) {
		char opts[64];
		snprintf(opts, sizeof opts, "pagesize=%lluM,mode=1777",
			 (unsigned long long)(page_size >> 20));
		if (mkdir(mountpoint, 0755) < 0 && errno != EEXIST)
			return l1__err(-errno, "cannot create %s: %s", mountpoint, strerror(errno));
		if (mount("hugetlbfs", mountpoint, "hugetlbfs", 0, opts) < 0)
			return l1__err(-errno, "cannot mount hugetlbfs at %s: %s%s", mountpoint,
				       strerror(errno), errno == EPERM ? " (run as root)" : "");
		if (msg)
			n += snprintf(msg + n, n < len ? len - n : 0, "mounted hugetlbfs at %s.",
				      mountpoint);
	} else if (msg) {
		n += snprintf(msg + n, n < len ? len - n : 0, "hugetlbfs mounted at %s.",
			      mountpoint);
	}
	return 0;
}
