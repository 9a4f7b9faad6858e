/*
 * intact.c - the view never dies of a shrunk pool file.  A process that
 * touches a page of its MAP_SHARED mapping beyond the end of a file that
 * was truncated (by anyone who can write it) gets SIGBUS; for l1fs that
 * would take the mount down for every user.  So before each request that
 * reads the pool (records, object bytes, usage), and before each gc pass,
 * l1fs_intact compares the file's size (fstat of the descriptor the pool is
 * mapped from) with what the header said at attach.  Once the file is
 * found shorter, the view marks itself damaged for good (a pool's lost
 * pages do not come back): every such request answers EIO, the log says
 * why once, `stats` says it, and l1fs makes no further library call that
 * would touch the mapping (release of holds and detach included).
 * The flag and sizes are atomics; no lock.
 */
#include "l1fs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>

void l1fs_intact_init(struct l1fs *fs, int fd, uint64_t size)
{
	fs->pool_fd = fd;
	fs->pool_size = size;
	atomic_store(&fs->truncated_to, UINT64_MAX);
}

int l1fs_intact(struct l1fs *fs)
{
	struct stat st;
	if (atomic_load_explicit(&fs->truncated_to, memory_order_relaxed) != UINT64_MAX)
		return -EIO;
	if (fs->pool_fd < 0 || fstat(fs->pool_fd, &st) < 0 || (uint64_t)st.st_size >= fs->pool_size)
		return 0;
	uint64_t none = UINT64_MAX;
	if (atomic_compare_exchange_strong(&fs->truncated_to, &none, (uint64_t)st.st_size))
		fprintf(stderr, "l1fs: the pool file %s is %" PRIu64 " bytes but its header says "
			"%" PRIu64 ": someone truncated it; its lost pages are gone, so the view "
			"answers EIO from now on instead of reading the pool (processes attached "
			"to it get SIGBUS when they touch the lost part); unmount, then destroy "
			"and create the pool again\n", fs->arena_path, (uint64_t)st.st_size,
			fs->pool_size);
	return -EIO;
}

int l1fs_intact_render(struct l1fs *fs, struct l1fs_buf *b)
{
	uint64_t now = atomic_load(&fs->truncated_to);
	l1fs_buf_printf(b, "pool              %s (id %" PRIu64 ")\n", fs->arena_path,
			fs->pool_id);
	l1fs_buf_printf(b, "state             DAMAGED: the pool file is %" PRIu64 " bytes but "
			"its header says %" PRIu64 " (truncated); every request that reads "
			"the pool answers EIO\n", now, fs->pool_size);
	return 0;
}
