/*
 * ops.c - the low-level FUSE operations of l1fs, one const table.  Every
 * handler answers its request exactly once (one fuse_reply_* per path out,
 * usually at a single exit), never blocks on anything but the pool lock,
 * and checks every name and offset a client sends, so nothing a client does
 * can crash the daemon or reach outside an object.
 *
 * Invariants:
 *   - node ids are stateless (l1fs.h): lookup counts are not kept, forget
 *     is a no-op, and every request re-reads the record of its object;
 *   - an open object file holds its object (l1_hold at open, l1_release at
 *     release); reads are served from that hold, so a reader (and every mmap
 *     of the file, which keeps it open) never sees the bytes of whoever gets
 *     the memory next, even after `rm` (the object is DOOMED until then);
 *   - writes go only to ALLOCATED objects, through handles opened for writing
 *     by the record's owner (or root); the state is checked again at each
 *     write, so a publish under an open handle makes the next write EROFS;
 *   - published objects are immutable, so their page cache is kept across
 *     opens, except the first published open of an id that was opened while
 *     unpublished (cache_lock guards that set);
 *   - generated files are rendered once per open into the handle and served
 *     with direct_io, so each `cat` sees the pool as it is then.
 * The kernel checks permissions (default_permissions) against the records'
 * uid/gid/mode before a request gets here; handlers check ownership again
 * where the mode alone does not decide (write, truncate, rm).
 */
#include "l1fs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define FIXED_TIMEOUT 3600.0
#define LIST_BATCH 1024

enum fh_type { FH_OBJ = 1, FH_TEXT = 2 };

struct fh {
	struct l1fs_handle link;        /* first: see l1fs_handles_free */
	enum fh_type type;
	int writable;
	uint64_t id;
	unsigned char *ptr;
	uint64_t size;
	struct l1fs_buf text;
};

/* One entry of a directory listing, taken when the listing starts. */
struct dent {
	uint64_t id;
	uint64_t size;
	uint64_t ctime_ns;
	uint64_t publish_ns;
	uint32_t uid, gid, mode, state;
	uint32_t name;                  /* offset in dirh.names (keys/) */
};

struct dirh {
	struct l1fs_handle link;        /* first */
	fuse_ino_t ino;
	int loaded;
	struct dent *v;
	size_t n, cap;
	struct l1fs_buf names;
};

static const struct {
	const char *name;
	fuse_ino_t ino;
} root_entries[] = {
	{ "objects", L1FS_INO_OBJECTS },
	{ "keys", L1FS_INO_KEYS },
	{ "meta", L1FS_INO_META },
	{ "stats", L1FS_INO_STATS },
	{ "metrics", L1FS_INO_METRICS },
	{ "clients", L1FS_INO_CLIENTS },
};
#define N_ROOT (sizeof root_entries / sizeof root_entries[0])

static struct l1fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static int caller_owns(fuse_req_t req, const struct l1_obj_info *oi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	return ctx->uid == 0 || ctx->uid == oi->uid;
}

/* ---- names and attributes ---------------------------------------------- */

static int key_object(struct l1fs *fs, const char *name, struct l1_obj_info *oi)
{
	char key[L1_KEY_MAX + 2];
	struct l1_obj obj;

	if (l1fs_key_decode(name, key, sizeof key) < 0)
		return -ENOENT;
	int r = l1_lookup(fs->arena, key, &obj);
	if (r < 0)
		return r == -ENOMEM ? r : -ENOENT;
	r = l1fs_obj_get(fs, obj.id, 0, oi);
	if (r < 0)
		return r;
	if (oi->state != L1_STATE_PUBLISHED || strcmp(oi->key, key))
		return -ENOENT;
	return 0;
}

static int lookup_entry(struct l1fs *fs, fuse_ino_t parent, const char *name,
			struct fuse_entry_param *e)
{
	struct l1_obj_info oi;
	uint64_t id;
	unsigned kind;
	int r;

	memset(e, 0, sizeof *e);
	switch (parent) {
	case L1FS_INO_ROOT:
		for (size_t i = 0; i < N_ROOT; i++) {
			if (strcmp(name, root_entries[i].name))
				continue;
			e->ino = root_entries[i].ino;
			e->attr_timeout = e->entry_timeout = FIXED_TIMEOUT;
			return l1fs_fixed_stat(fs, e->ino, &e->attr);
		}
		return -ENOENT;
	case L1FS_INO_OBJECTS:
	case L1FS_INO_META:
		if (l1fs_parse_id(name, &id))
			return -ENOENT;
		r = l1fs_obj_get(fs, id, 0, &oi);
		if (r < 0)
			return r;
		kind = parent == L1FS_INO_OBJECTS ? L1FS_K_OBJ : L1FS_K_META;
		break;
	case L1FS_INO_KEYS:
		r = key_object(fs, name, &oi);
		if (r < 0)
			return r;
		kind = L1FS_K_KEY;
		break;
	default:
		return -ENOTDIR;
	}
	l1fs_obj_stat(fs, kind, &oi, &e->attr);
	e->ino = e->attr.st_ino;
	e->attr_timeout = fs->attr_timeout;
	e->entry_timeout = fs->entry_timeout;
	return 0;
}

static int node_stat(struct l1fs *fs, fuse_ino_t ino, struct stat *st, double *timeout)
{
	struct l1_obj_info oi;
	unsigned kind = l1fs_ino_kind(ino);
	int r;

	if (kind == L1FS_K_FIXED) {
		*timeout = FIXED_TIMEOUT;
		return l1fs_fixed_stat(fs, ino, st);
	}
	r = l1fs_obj_get(fs, l1fs_ino_id(ino), kind != L1FS_K_KEY, &oi);
	if (r < 0)
		return r;
	if (kind == L1FS_K_KEY && (oi.state != L1_STATE_PUBLISHED || !oi.key[0]))
		return -ENOENT;
	l1fs_obj_stat(fs, kind, &oi, st);
	*timeout = fs->attr_timeout;
	return 0;
}

/* ---- lifecycle --------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* `ls -l` of a big objects/ wants attributes with every entry */
	if (conn->capable & FUSE_CAP_READDIRPLUS) {
		conn->want |= FUSE_CAP_READDIRPLUS;
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	}
	/* a key's target never changes for a given node id */
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* no flock/posix locks: the kernel handles them locally */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	l1fs_first_request(fs_of(req));
	int r = lookup_entry(fs_of(req), parent, name, &e);
	if (r < 0)
		fuse_reply_err(req, l1fs_errno(r));
	else
		fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	(void)count;
	(void)forgets;
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	double timeout;
	(void)fi;
	l1fs_first_request(fs_of(req));
	int r = node_stat(fs_of(req), ino, &st, &timeout);
	if (r < 0)
		fuse_reply_err(req, l1fs_errno(r));
	else
		fuse_reply_attr(req, &st, timeout);
}

static int do_setattr(fuse_req_t req, struct l1fs *fs, fuse_ino_t ino,
		      struct stat *attr, int to_set, struct stat *out)
{
	struct l1_obj_info oi;
	double timeout;
	uint64_t id = l1fs_ino_id(ino);
	int r;

	if (l1fs_ino_kind(ino) != L1FS_K_OBJ)
		return -EPERM;
	r = l1fs_obj_get(fs, id, 1, &oi);
	if (r < 0)
		return r;
	int published = oi.state != L1_STATE_ALLOCATED;
	if (to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
		      FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)) {
		if (published)
			return -EROFS;
		if (!caller_owns(req, &oi))
			return -EACCES;
		/* an object is a fixed-size buffer: truncating to 0 (as
		 * `cat data > objects/ID` does) or to its size is a no-op;
		 * times cannot be stored (mtime is the publish time) */
		if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != 0 &&
		    (uint64_t)attr->st_size != oi.obj.size)
			return -EINVAL;
	}
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uint32_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : oi.uid;
		uint32_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : oi.gid;
		uint32_t mode = (to_set & FUSE_SET_ATTR_MODE) ? (attr->st_mode & 07777)
							      : oi.mode;
		r = l1_obj_chmod(fs->arena, id, uid, gid, mode);
		if (r < 0)
			return r;
	}
	return node_stat(fs, ino, out, &timeout);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct l1fs *fs = fs_of(req);
	struct stat st;
	(void)fi;
	int r = do_setattr(req, fs, ino, attr, to_set, &st);
	if (r < 0)
		fuse_reply_err(req, l1fs_errno(r));
	else
		fuse_reply_attr(req, &st, fs->attr_timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct stat st;
	double timeout;
	char target[64];
	int r = -EINVAL;

	if (l1fs_ino_kind(ino) == L1FS_K_KEY)
		r = node_stat(fs_of(req), ino, &st, &timeout);
	if (r < 0) {
		fuse_reply_err(req, l1fs_errno(r));
		return;
	}
	snprintf(target, sizeof target, "../objects/%" PRIu64, l1fs_ino_id(ino));
	fuse_reply_readlink(req, target);
}

/* mknod, mkdir, symlink, link, rename, create: objects come from l1_alloc */
static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent; (void)name; (void)mode; (void)rdev;
	fuse_reply_err(req, EPERM);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent; (void)name; (void)mode;
	fuse_reply_err(req, EPERM);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link; (void)parent; (void)name;
	fuse_reply_err(req, EPERM);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	(void)ino; (void)newparent; (void)newname;
	fuse_reply_err(req, EPERM);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	(void)parent; (void)name; (void)newparent; (void)newname; (void)flags;
	fuse_reply_err(req, EPERM);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	(void)parent; (void)name; (void)mode; (void)fi;
	fuse_reply_err(req, EPERM);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)name;
	fuse_reply_err(req, parent == L1FS_INO_ROOT ? EPERM : ENOTDIR);
}

/* rm objects/ID or rm keys/KEY: frees the object (owner or root). */
static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct l1fs *fs = fs_of(req);
	struct l1_obj_info oi;
	uint64_t id;
	int r;

	if (parent == L1FS_INO_OBJECTS) {
		r = l1fs_parse_id(name, &id) ? -ENOENT : l1fs_obj_get(fs, id, 0, &oi);
	} else if (parent == L1FS_INO_KEYS) {
		r = key_object(fs, name, &oi);
	} else {
		struct fuse_entry_param e;
		r = lookup_entry(fs, parent, name, &e);
		r = r < 0 ? r : -EPERM;
	}
	if (r == 0 && !caller_owns(req, &oi))
		r = -EPERM;
	if (r == 0) {
		id = oi.obj.id;
		r = l1_free_ids(fs->arena, &id, 1);
	}
	fuse_reply_err(req, l1fs_errno(r));
}

/* ---- files ------------------------------------------------------------- */

static void handle_add(struct l1fs *fs, struct l1fs_handle *l, int is_dir)
{
	l->is_dir = is_dir;
	pthread_mutex_lock(&fs->handles_lock);
	l->next = fs->handles.next;
	l->prev = &fs->handles;
	l->next->prev = l;
	fs->handles.next = l;
	pthread_mutex_unlock(&fs->handles_lock);
}

static void handle_del(struct l1fs *fs, struct l1fs_handle *l)
{
	pthread_mutex_lock(&fs->handles_lock);
	if (l->next) {
		l->prev->next = l->next;
		l->next->prev = l->prev;
		l->next = l->prev = NULL;
	}
	pthread_mutex_unlock(&fs->handles_lock);
}

static void fh_free(struct l1fs *fs, struct fh *h)
{
	if (!h)
		return;
	handle_del(fs, &h->link);
	if (h->type == FH_OBJ) {
		l1_release(fs->arena, h->id);
		atomic_fetch_sub(&fs->open_files, 1);
	}
	l1fs_buf_free(&h->text);
	free(h);
}

static int open_text(struct l1fs *fs, fuse_ino_t ino, struct fh *h)
{
	struct l1_obj_info oi;
	int r;

	h->type = FH_TEXT;
	switch (ino) {
	case L1FS_INO_STATS:
		return l1fs_render_stats(fs, &h->text);
	case L1FS_INO_METRICS:
		return l1fs_render_metrics(fs, &h->text);
	case L1FS_INO_CLIENTS:
		return l1fs_render_clients(fs, &h->text);
	}
	if (l1fs_ino_kind(ino) != L1FS_K_META)
		return -EISDIR;
	r = l1fs_obj_get(fs, l1fs_ino_id(ino), 1, &oi);
	return r < 0 ? r : l1fs_render_meta(fs, &oi, &h->text);
}

static int open_object(fuse_req_t req, struct l1fs *fs, fuse_ino_t ino,
		       struct fuse_file_info *fi, struct fh *h)
{
	struct l1_obj_info oi;
	struct l1_obj obj;
	uint64_t id = l1fs_ino_id(ino);
	int acc = fi->flags & O_ACCMODE;
	int r;

	r = l1fs_obj_get(fs, id, 0, &oi);
	if (r < 0)
		return r;
	if (acc != O_RDONLY) {
		if (oi.state != L1_STATE_ALLOCATED)
			return -EROFS;
		if (!caller_owns(req, &oi))
			return -EACCES;
	}
	r = l1_hold(fs->arena, id, &obj);
	if (r < 0)
		return r;
	h->type = FH_OBJ;
	h->id = id;
	h->ptr = obj.ptr;
	h->size = obj.size;
	h->writable = acc != O_RDONLY;
	atomic_fetch_add(&fs->open_files, 1);

	/* recheck after the hold: published in between is fine for readers */
	r = l1fs_obj_get(fs, id, 0, &oi);
	if (r == 0 && h->writable && oi.state != L1_STATE_ALLOCATED)
		r = -EROFS;
	if (r < 0)
		return r;
	pthread_mutex_lock(&fs->cache_lock);
	if (oi.state == L1_STATE_PUBLISHED) {
		fi->keep_cache = !l1fs_idset_take(&fs->cached, id);
	} else {
		fi->keep_cache = 0;
		if (l1fs_idset_add(&fs->cached, id) < 0)
			r = -ENOMEM;
	}
	pthread_mutex_unlock(&fs->cache_lock);
	return r;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct l1fs *fs = fs_of(req);
	struct fh *h = calloc(1, sizeof *h);
	int r;

	l1fs_first_request(fs);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (l1fs_ino_kind(ino) == L1FS_K_OBJ) {
		r = open_object(req, fs, ino, fi, h);
	} else if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		r = l1fs_ino_kind(ino) == L1FS_K_FIXED && ino <= L1FS_INO_META ? -EISDIR
									    : -EACCES;
	} else {
		r = open_text(fs, ino, h);
		fi->direct_io = 1;
		fi->nonseekable = 0;
	}
	if (r < 0) {
		fh_free(fs, h);
		fuse_reply_err(req, l1fs_errno(r));
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	handle_add(fs, &h->link, 0);
	/* if the opener is gone (interrupted), no release will come */
	if (fuse_reply_open(req, fi) != 0)
		fh_free(fs, h);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	const void *src;
	uint64_t len;
	(void)ino;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (h->type == FH_TEXT) {
		src = h->text.p;
		len = h->text.len;
	} else {
		src = h->ptr;
		len = h->size;
	}
	if ((uint64_t)off >= len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > len - (uint64_t)off)
		size = (size_t)(len - (uint64_t)off);
	if (h->type == FH_TEXT) {
		/* The kernel wakes the reader (who may close, and so free the
		 * text in release on another thread) while writev is still
		 * returning here; sanitizers check the iovec after the call.
		 * A private copy keeps that clean; texts are small. */
		char *copy = malloc(size ? size : 1);
		if (!copy) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		memcpy(copy, (const char *)src + off, size);
		fuse_reply_buf(req, copy, size);
		free(copy);
		return;
	}
	/* straight from the pool mapping into the kernel: no copy here */
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
	bv.buf[0].mem = (char *)src + off;
	fuse_reply_data(req, &bv, 0);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	struct l1fs *fs = fs_of(req);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	struct l1_obj_info oi;
	int r = 0;
	(void)ino;

	if (h->type != FH_OBJ || !h->writable)
		r = -EBADF;
	else if (off < 0)
		r = -EINVAL;
	else if ((r = l1fs_obj_get(fs, h->id, 1, &oi)) < 0)
		r = -EROFS;             /* freed under the handle */
	else if (oi.state != L1_STATE_ALLOCATED)
		r = -EROFS;
	else if ((uint64_t)off >= h->size)
		r = size ? -EFBIG : 0;
	if (r < 0) {
		fuse_reply_err(req, l1fs_errno(r));
		return;
	}
	if ((uint64_t)off < h->size && size > h->size - (uint64_t)off)
		size = (size_t)(h->size - (uint64_t)off);
	if ((uint64_t)off < h->size)
		memcpy(h->ptr + off, buf, size);
	else
		size = 0;
	fuse_reply_write(req, size);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino; (void)fi;
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)ino; (void)datasync; (void)fi;
	fuse_reply_err(req, 0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fh_free(fs_of(req), (struct fh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			 off_t length, struct fuse_file_info *fi)
{
	(void)ino; (void)mode; (void)offset; (void)length; (void)fi;
	fuse_reply_err(req, EOPNOTSUPP);
}

/* ---- directories ------------------------------------------------------- */

static void dir_free(struct l1fs *fs, struct dirh *d)
{
	handle_del(fs, &d->link);
	free(d->v);
	l1fs_buf_free(&d->names);
	free(d);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *d;

	if (ino != L1FS_INO_ROOT && ino != L1FS_INO_OBJECTS && ino != L1FS_INO_KEYS &&
	    ino != L1FS_INO_META) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	d = calloc(1, sizeof *d);
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	d->ino = ino;
	fi->fh = (uint64_t)(uintptr_t)d;
	handle_add(fs_of(req), &d->link, 1);
	if (fuse_reply_open(req, fi) != 0)
		dir_free(fs_of(req), d);
}

static int dir_push(struct dirh *d, const struct l1_obj_info *oi, uint32_t name)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 1024;
		struct dent *v = realloc(d->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	struct dent *e = &d->v[d->n++];
	e->id = oi->obj.id;
	e->size = oi->obj.size;
	e->ctime_ns = oi->ctime_ns;
	e->publish_ns = oi->publish_ns;
	e->uid = oi->uid;
	e->gid = oi->gid;
	e->mode = oi->mode;
	e->state = oi->state;
	e->name = name;
	return 0;
}

/* Takes the listing of objects/, meta/ or keys/ (one pass over the records,
 * LIST_BATCH at a time; offsets in the reply index this listing). */
static int dir_load(struct l1fs *fs, struct dirh *d)
{
	struct l1_obj_info *batch = malloc(LIST_BATCH * sizeof *batch);
	uint64_t cursor = 0;
	int n, r = 0;

	if (!batch)
		return -ENOMEM;
	d->n = 0;
	d->names.len = 0;
	d->names.oom = 0;
	while (r == 0 && (n = l1_obj_list(fs->arena, &cursor, batch, LIST_BATCH)) > 0) {
		for (int i = 0; i < n && r == 0; i++) {
			const struct l1_obj_info *oi = &batch[i];
			uint32_t name = 0;
			if (!l1fs_state_listed(oi->state) || !l1fs_id_nameable(oi->obj.id))
				continue;
			if (d->ino == L1FS_INO_KEYS) {
				char enc[NAME_MAX + 1];
				if (oi->state != L1_STATE_PUBLISHED || !oi->key[0] ||
				    l1fs_key_encode(oi->key, enc, sizeof enc) < 0)
					continue;
				name = (uint32_t)d->names.len;
				l1fs_buf_printf(&d->names, "%s%c", enc, 0);
				if (d->names.oom)
					r = -ENOMEM;
			}
			if (r == 0)
				r = dir_push(d, oi, name);
		}
	}
	if (r == 0 && n < 0)
		r = n;
	free(batch);
	d->loaded = r == 0;
	return r;
}

static void dent_info(const struct dent *e, struct l1_obj_info *oi)
{
	memset(oi, 0, sizeof *oi);
	oi->obj.id = e->id;
	oi->obj.size = e->size;
	oi->ctime_ns = e->ctime_ns;
	oi->publish_ns = e->publish_ns;
	oi->uid = e->uid;
	oi->gid = e->gid;
	oi->mode = e->mode;
	oi->state = e->state;
	oi->key[0] = 'k';       /* only its presence matters for the stat */
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, int plus)
{
	struct l1fs *fs = fs_of(req);
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	char *buf;
	size_t pos = 0, total;
	int r = 0;
	(void)ino;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (d->ino != L1FS_INO_ROOT && (off == 0 || !d->loaded))
		r = dir_load(fs, d);
	if (r < 0) {
		fuse_reply_err(req, l1fs_errno(r));
		return;
	}
	if (size > (1u << 20))
		size = 1u << 20;
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	total = 2 + (d->ino == L1FS_INO_ROOT ? N_ROOT : d->n);
	for (size_t i = (size_t)off; i < total; i++) {
		struct fuse_entry_param e;
		char idname[24];
		const char *name;

		memset(&e, 0, sizeof e);
		if (i < 2) {
			name = i == 0 ? "." : "..";
			e.attr.st_mode = S_IFDIR;
			e.attr.st_ino = i == 0 ? d->ino : L1FS_INO_ROOT;
		} else if (d->ino == L1FS_INO_ROOT) {
			name = root_entries[i - 2].name;
			e.ino = root_entries[i - 2].ino;
			l1fs_fixed_stat(fs, e.ino, &e.attr);
			e.attr_timeout = e.entry_timeout = FIXED_TIMEOUT;
		} else {
			const struct dent *de = &d->v[i - 2];
			struct l1_obj_info oi;
			unsigned kind = d->ino == L1FS_INO_OBJECTS ? L1FS_K_OBJ :
					d->ino == L1FS_INO_META ? L1FS_K_META : L1FS_K_KEY;
			dent_info(de, &oi);
			l1fs_obj_stat(fs, kind, &oi, &e.attr);
			e.ino = e.attr.st_ino;
			e.attr_timeout = fs->attr_timeout;
			e.entry_timeout = fs->entry_timeout;
			if (kind == L1FS_K_KEY) {
				name = d->names.p + de->name;
			} else {
				snprintf(idname, sizeof idname, "%" PRIu64, de->id);
				name = idname;
			}
		}
		size_t need = plus ? fuse_add_direntry_plus(req, buf + pos, size - pos,
							     name, &e, (off_t)(i + 1))
				   : fuse_add_direntry(req, buf + pos, size - pos, name,
						       &e.attr, (off_t)(i + 1));
		if (need > size - pos)
			break;
		pos += need;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dir_free(fs_of(req), (struct dirh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct l1fs *fs = fs_of(req);
	struct l1_usage u;
	struct statvfs sv;
	(void)ino;

	int r = l1_arena_usage(fs->arena, &u);
	if (r < 0) {
		fuse_reply_err(req, l1fs_errno(r));
		return;
	}
	uint64_t bs = u.align_bytes ? u.align_bytes : 4096;
	memset(&sv, 0, sizeof sv);
	sv.f_bsize = bs;
	sv.f_frsize = bs;
	sv.f_blocks = u.total_bytes / bs;
	sv.f_bfree = u.free_bytes / bs;
	sv.f_bavail = sv.f_bfree;
	sv.f_files = u.max_objects;
	sv.f_ffree = u.objects[L1_STATE_FREE];
	sv.f_favail = sv.f_ffree;
	sv.f_namemax = NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes ----------------------------------------------- */

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct l1fs *fs = fs_of(req);
	struct l1_obj_info oi;
	struct l1fs_buf b = { 0 };
	int r = -ENODATA;

	/* No labels, no ACLs: "not supported" (rather than "no data") lets
	 * `ls -l` stop asking for them on this device after the first file,
	 * instead of two round trips per file. */
	if (strncmp(name, "user.", 5))
		r = -EOPNOTSUPP;
	else if (l1fs_ino_kind(ino) == L1FS_K_OBJ) {
		r = l1fs_obj_get(fs, l1fs_ino_id(ino), 1, &oi);
		if (r == 0)
			r = l1fs_xattr_get(fs, &oi, name, &b);
	}
	if (r < 0)
		fuse_reply_err(req, l1fs_errno(r));
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else if (size < (size_t)r)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, b.p, (size_t)r);
	l1fs_buf_free(&b);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct l1fs *fs = fs_of(req);
	struct l1_obj_info oi;
	struct l1fs_buf b = { 0 };
	int r = 0;

	if (l1fs_ino_kind(ino) == L1FS_K_OBJ) {
		r = l1fs_obj_get(fs, l1fs_ino_id(ino), 1, &oi);
		if (r == 0) {
			l1fs_xattr_names(&oi, &b);
			if (b.oom)
				r = -ENOMEM;
		}
	}
	if (r < 0)
		fuse_reply_err(req, l1fs_errno(r));
	else if (size == 0)
		fuse_reply_xattr(req, b.len);
	else if (size < b.len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, b.p, b.len);
	l1fs_buf_free(&b);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	(void)ino; (void)value; (void)size; (void)flags;
	fuse_reply_err(req, strncmp(name, "user.l1.", 8) ? ENOTSUP : EPERM);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	fuse_reply_err(req, strncmp(name, "user.l1.", 8) ? ENODATA : EPERM);
}

void l1fs_handles_free(struct l1fs *fs)
{
	for (;;) {
		pthread_mutex_lock(&fs->handles_lock);
		struct l1fs_handle *l = fs->handles.next;
		pthread_mutex_unlock(&fs->handles_lock);
		if (l == &fs->handles)
			break;
		if (l->is_dir)
			dir_free(fs, (struct dirh *)l);
		else
			fh_free(fs, (struct fh *)l);
	}
}

const struct fuse_lowlevel_ops l1fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.fsync = op_fsync,
	.release = op_release,
	.fallocate = op_fallocate,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};
