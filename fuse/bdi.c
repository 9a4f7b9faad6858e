/*
 * bdi.c - raises the kernel's read-ahead for the view's mount.  FUSE offers
 * the daemon at most the default 128 KiB read-ahead at init, so a big
 * sequential read of an object goes through in 128 KiB requests, each a
 * round trip; with a few MiB of read-ahead the kernel asks in 1 MiB requests
 * (max_pages) and keeps several in flight, which more than doubles the
 * throughput of `cat objects/ID`.  The knob is the mount's backing device
 * (/sys/class/bdi/MAJ:MIN/read_ahead_kb, root only), found through
 * /proc/self/mountinfo rather than stat(), which would send a request to a
 * session that is not serving yet, and only once the session has answered
 * INIT (the kernel applies the INIT reply's read-ahead, capped at its own
 * 128 KiB, when that reply arrives), i.e. at the first request after INIT;
 * fs->read_ahead_set makes that happen once.  Best effort: failure changes nothing
 * but speed.  No state, no locks.
 */
#include "l1fs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* mountinfo escapes ' ', '\t', '\n', '\\' as \ooo */
static void unescape(char *s)
{
	char *o = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

int l1fs_set_readahead(const char *mountpoint, unsigned kb)
{
	char *abs = realpath(mountpoint, NULL);
	char line[4096], dev[32] = "", path[128];
	FILE *f;
	int r = -ENOENT;

	if (!abs)
		return -errno;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f) {
		r = -errno;
		goto out;
	}
	while (fgets(line, sizeof line, f)) {
		char mdev[32], mnt[2048], *sep;
		if (sscanf(line, "%*s %*s %31s %*s %2047s", mdev, mnt) != 2)
			continue;
		sep = strstr(line, " - ");
		if (!sep || strncmp(sep + 3, "fuse.l1fs ", 10))
			continue;
		unescape(mnt);
		if (!strcmp(mnt, abs))
			snprintf(dev, sizeof dev, "%s", mdev);  /* the last one wins */
	}
	fclose(f);
	if (!dev[0])
		goto out;
	snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", dev);
	f = fopen(path, "we");
	if (!f) {
		r = -errno;
		goto out;
	}
	r = fprintf(f, "%u\n", kb) < 0 ? -EIO : 0;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
out:
	free(abs);
	return r;
}

void l1fs_first_request(struct l1fs *fs)
{
	int expect = 0;

	if (atomic_load_explicit(&fs->read_ahead_set, memory_order_relaxed))
		return;
	if (!atomic_compare_exchange_strong(&fs->read_ahead_set, &expect, 1))
		return;
	if (fs->read_ahead_kb && fs->mountpoint)
		l1fs_set_readahead(fs->mountpoint, fs->read_ahead_kb);
}
