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
 * l1_release(a, out->id).  The pool lock is taken by l1_hold only.
 *
 * A read-only handle cannot write a hold into the pool, so it holds through
 * the view: it opens the view's file (the view takes a hold for as long as
 * the file is open), asks that open file which object it is, and keeps the
 * descriptor on the handle's list (under `local`) until l1_release or close.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "internal.h"

struct l1_view_hold {
	uint64_t id;
	int fd;                         /* an open file of the view: its hold */
	struct l1_view_hold *next;
};

/* A decimal u64 from an xattr value of path (fd < 0) or of the open file
 * fd: 0, or -EINVAL. */
static int view_u64(const char *path, int fd, const char *name, uint64_t *out)
{
	char buf[32], *end;
	ssize_t n = fd < 0 ? getxattr(path, name, buf, sizeof buf - 1)
			   : fgetxattr(fd, name, buf, sizeof buf - 1);

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
	struct l1_view_hold *vh = NULL;
	uint64_t id, pool;
	int r = l1__handle_check(a), fd = -1;

	if (r)
		return r;
	if (!view_path || !out)
		return l1__err(-EINVAL, "NULL argument to l1_open_path");
	if (a->readonly) {
		vh = malloc(sizeof *vh);
		if (!vh)
			return l1__err(-ENOMEM, "out of process memory");
		fd = open(view_path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = l1__err(-errno, "%s: %s", view_path, strerror(errno));
			goto fail;
		}
	}
	if ((r = view_u64(view_path, fd, "user.l1.id", &id)))
		goto fail;
	if ((r = view_u64(view_path, fd, "user.l1.pool", &pool)))
		goto fail;
	if (pool != a->h->pool_id) {
		r = l1__err(-EXDEV, "%s is an object of another pool (id %" PRIu64 "), not of %s "
			    "(id %" PRIu64 ")", view_path, pool, a->path, a->h->pool_id);
		goto fail;
	}
	if (vh) {               /* the open file is the hold: this only reads */
		if ((r = l1_get(a, id, out)))
			goto fail;
		*vh = (struct l1_view_hold){ id, fd, NULL };
		pthread_mutex_lock(&a->local);
		vh->next = a->view_holds;
		a->view_holds = vh;
		pthread_mutex_unlock(&a->local);
		return 0;
	}
	if ((r = l1_hold(a, id, out)))
		return r;
	if (out->pool_id != pool) {
		l1_release(a, id);
		return l1__err(-EXDEV, "%s: object of another pool", view_path);
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(vh);
	return r;
}

int l1__view_release(struct l1_arena *a, uint64_t id)
{
	struct l1_view_hold *vh = NULL, **link;
	pthread_mutex_lock(&a->local);
	for (link = &a->view_holds; *link; link = &(*link)->next)
		if ((*link)->id == id) {
			vh = *link;
			*link = vh->next;
			break;
		}
	pthread_mutex_unlock(&a->local);
	if (!vh)
		return l1__err(-EINVAL, "this read-only handle holds no object %llu (it holds "
			       "only through l1_open_path)", (unsigned long long)id);
	close(vh->fd);
	free(vh);
	return 0;
}

void l1__view_release_all(struct l1_arena *a)
{
	while (a->view_holds)
		l1__view_release(a, a->view_holds->id);
}
