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
#include <sys/file.h>
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

static int read_ulong(const char *path, unsigned long *v);

/* Huge pages of page_size a new commit can take now: the kernel's free pages
 * less those already promised to mappings and mounts (free_hugepages counts
 * reserved pages as free), and, when fd is a file on a hugetlbfs mount with
 * a size= limit, no more than that mount has left. */
uint64_t l1__hugepages_avail(uint64_t page_size, int fd)
{
	char knob[128];
	unsigned long fr = 0, rs = 0;
	if (!page_size)
		page_size = L1_HUGEPAGE_2M;
	snprintf(knob, sizeof knob, "/sys/kernel/mm/hugepages/hugepages-%llukB/free_hugepages",
		 (unsigned long long)(page_size >> 10));
	read_ulong(knob, &fr);
	snprintf(knob, sizeof knob, "/sys/kernel/mm/hugepages/hugepages-%llukB/resv_hugepages",
		 (unsigned long long)(page_size >> 10));
	read_ulong(knob, &rs);
	uint64_t avail = fr > rs ? fr - rs : 0;
	struct statfs sf;
	if (fd >= 0 && fstatfs(fd, &sf) == 0 && (uint64_t)sf.f_type == HUGETLBFS_MAGIC &&
	    sf.f_blocks > 0 && (uint64_t)sf.f_bfree < avail)
		avail = sf.f_bfree;
	return avail;
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
		if (r == -ENOSPC && h->backing == L1_BACKING_HUGETLBFS)
			snprintf(h->grow_reason, sizeof h->grow_reason,
				 "growth past %llu MiB failed: %llu more huge pages needed, "
				 "%llu free; gave back %llu MiB", (unsigned long long)(c >> 20),
				 (unsigned long long)((target - c + h->hugepage_size - 1) /
						      h->hugepage_size),
				 (unsigned long long)l1__hugepages_avail(h->hugepage_size, a->fd),
				 (unsigned long long)(back >> 20));
		else
			snprintf(h->grow_reason, sizeof h->grow_reason,
				 "growth past %llu MiB failed: %s; gave back %llu MiB",
				 (unsigned long long)(c >> 20), strerror(-r),
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

/* The lock l1arena's programs take around a change of nr_hugepages (see
 * tools/hugepages.sh): an exclusive flock on $L1_HUGEPAGES_LOCK, default
 * /run/lock/l1arena-nr_hugepages.  -1 (no lock, go on) where it cannot be
 * had; a bounded wait, so a stuck holder delays but never stops setup. */
static int hugepages_lock(void)
{
	const char *p = getenv("L1_HUGEPAGES_LOCK");
	int fd = open(p && *p ? p : "/run/lock/l1arena-nr_hugepages",
		      O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	for (int i = 0; i < 300; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		usleep(100000);
	}
	close(fd);
	return -1;
}

static void hugepages_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
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
	unsigned long total = 0;
	uint64_t free_pages;
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
	char nr[192];
	snprintf(nr, sizeof nr, "%snr_hugepages", knob);
	if (read_ulong(nr, &total) < 0)
		return l1__err(-ENODEV, "this kernel has no %llu kB huge pages (%s missing)",
			       (unsigned long long)(page_size >> 10), nr);
	int mounted = hugetlbfs_at(mountpoint, page_size);
	struct statfs sf;
	if (mounted && statfs(mountpoint, &sf) == 0 && sf.f_blocks > 0) {
		/* a mount with a size= limit: its own free pages are what a pool
		 * there can have (a min_size= mount holds them reserved), and
		 * more pages in the kernel would not raise the limit */
		if ((uint64_t)sf.f_bfree < pages)
			return l1__err(-ENOSPC, "the hugetlbfs at %s is limited to %llu huge pages "
				       "and has %llu free, fewer than the %llu asked for: ask for "
				       "fewer or use another mount", mountpoint,
				       (unsigned long long)sf.f_blocks,
				       (unsigned long long)sf.f_bfree, (unsigned long long)pages);
		if (msg)
			snprintf(msg, len, "huge pages: %llu free on the hugetlbfs mounted at %s "
				 "(limited to %llu).", (unsigned long long)sf.f_bfree, mountpoint,
				 (unsigned long long)sf.f_blocks);
		return 0;
	}
	/* free and not reserved: pages another program has reserved (a
	 * mapping, a min_size= mount) count as free in free_hugepages */
	int lk = hugepages_lock();
	read_ulong(nr, &total);
	free_pages = l1__hugepages_avail(page_size, -1);
	if (pages > free_pages) {
		/* by the difference: others change the count too */
		unsigned long before = total;
		unsigned long want = total + (unsigned long)(pages - free_pages);
		int r = write_ulong(nr, want);
		read_ulong(nr, &total);
		hugepages_unlock(lk);
		if (r)
			return l1__err(r, "cannot raise %s to %lu: %s%s", nr, want, strerror(-r),
				       r == -EACCES || r == -EPERM ? " (run as root)" : "");
		unsigned long added = total > before ? total - before : 0;
		free_pages = l1__hugepages_avail(page_size, -1);
		if (msg)
			n += snprintf(msg + n, n < len ? len - n : 0,
				      "huge pages: added %lu (%lu in the kernel's pool), %llu free. ",
				      added, total, (unsigned long long)free_pages);
		if (free_pages < pages)
			return l1__err(-ENOMEM, "asked the kernel for %llu free huge pages, got %llu, "
				       "added %lu (memory too fragmented or too small, or taken by "
				       "another program)", (unsigned long long)pages,
				       (unsigned long long)free_pages, added);
	} else {
		hugepages_unlock(lk);
		if (msg)
			n += snprintf(msg + n, n < len ? len - n : 0,
				      "huge pages: %llu free already. ",
				      (unsigned long long)free_pages);
	}
	if (!mounted) {
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
