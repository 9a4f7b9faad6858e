/*
 * viewpath.c - l1_open_path: the zero-copy way to read an object named by a
 * path in an l1fs view (MOUNT/objects/ID or MOUNT/keys/KEY).  Reading the
 * file through the view copies (FUSE goes through the page cache); this call
 * instead asks the view which object the path is (its user.l1.id and
 * user.l1.pool extended attributes; a keys/ symlink is followed by the
 * kernel), checks the object belongs to the pool this handle maps (else
 * -EXDEV), and takes a hold on it, returning a pointer into this process's
 * own mapping.  The hold is by full id (generation included), so if the
 * object was freed and its slot reused between the two steps, the hold fails
 * (-ENOENT/-ESTALE) rather than return someone else's bytes.  Release with
 * l1_release(a, out->id).  No state; the pool lock is taken by l1_hold only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "internal.h"

/* A decimal u64 from an xattr value: 0, or -EINVAL. */
static int view_u64(const char *path, const char *name, uint64_t *out)
{
	char buf[32], *end;
	ssize_t n = getxattr(path, name, buf, sizeof buf - 1);

	if (n < 0) {
		int e = errno;
		if (e == ENODATA || e == ENOTSUP || e == ERANGE)
			return l1__err(-EINVAL, "%s is not an object in an l1fs view (no %s)",
				       path, name);
		return l1__err(-e, "%s: %s", path, strerror(e));
	}
	buf[n] = 0;
	if (n == 0 || buf[0] < '0' || buf[0] > '9')
		return l1__err(-EINVAL, "%s: %s is not a number", path, name);
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (errno || *end)
		return l1__err(-EINVAL, "%s: %s is not a number", path, name);
	*out = v;
	return 0;
}

int l1_open_path(struct l1_arena *a, const char *view_path, struct l1_obj *out)
{
	struct l1_vm_space vm;
	uint64_t id, pool;
	int r;

	if (!a || !view_path || !out)
		return l1__err(-EINVAL, "NULL argument to l1_open_path");
	if ((r = view_u64(view_path, "user.l1.id", &id)))
		return r;
	if ((r = view_u64(view_path, "user.l1.pool", &pool)))
		return r;
	if ((r = l1_get_vm_space(a, &vm)))
		return r;
	if (pool != vm.pool_id)
		return l1__err(-EXDEV, "%s is an object of another pool (id %" PRIu64
			       "), not of %s (id %" PRIu64 ")", view_path, pool, vm.path,
			       vm.pool_id);
	if ((r = l1_hold(a, id, out)))
		return r;
	if (out->pool_id != pool) {
		l1_release(a, id);
		return l1__err(-EXDEV, "%s: object of another pool", view_path);
	}
	return 0;
}
