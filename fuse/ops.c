/*
 * ops.c - the low-level FUSE operations of l1fs, one const table (file and
 * directory handlers live in file.c and dir.c), and here the name space:
 * lookup, attributes, symlinks, rm, the operations a pool does not have
 * (mkdir, rename, link, ...: EPERM), statfs and the user.l1.* extended
 * attributes.  Every handler answers its request exactly once, never blocks
 * on anything but the pool lock, and checks every name a client sends, so
 * nothing a client does can crash the daemon.
 *
 * Node ids are stateless (l1fs.h): lookup counts are not kept, forget is a
 * no-op, and every request re-reads the record of its object.  The kernel
 * checks permissions (default_permissions) against the records' uid/gid/mode
 * before a request gets here; handlers check ownership again where the mode
 * alone does not decide (truncate, rm).  No locks of its own.
 */
#include "l1fs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

/* ---- names and attributes ---------------------------------------------- */

static int key_object(struct l1fs *fs, const char *name, struct l1_obj_info *oi)
{
	char key[L1_KEY_MAX + 2];
	struct l1_obj obj;

	if (l1fs_key_decode(name, key, sizeof key) < 0)
		return -ENOENT;
	int r = l1fs_intact(fs);
	if (r < 0)
		return r;
	r = l1_lookup(fs->arena, key, &obj);
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
		for (size_t i = 0; i < L1FS_N_ROOT; i++) {
			if (strcmp(name, l1fs_root[i].name))
				continue;
			e->ino = l1fs_root[i].ino;
			e->attr_timeout = e->entry_timeout = L1FS_FIXED_TIMEOUT;
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
		*timeout = L1FS_FIXED_TIMEOUT;
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
	l1fs_first_request(l1fs_of(req));
	int r = lookup_entry(l1fs_of(req), parent, name, &e);
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
	l1fs_first_request(l1fs_of(req));
	int r = node_stat(l1fs_of(req), ino, &st, &timeout);
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
		if (!l1fs_caller_owns(req, &oi))
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
	struct l1fs *fs = l1fs_of(req);
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
		r = node_stat(l1fs_of(req), ino, &st, &timeout);
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
	struct l1fs *fs = l1fs_of(req);
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
	if (r == 0 && !l1fs_caller_owns(req, &oi))
		r = -EPERM;
	if (r == 0) {
		id = oi.obj.id;
		r = l1_free_ids(fs->arena, &id, 1);
	}
	fuse_reply_err(req, l1fs_errno(r));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct l1fs *fs = l1fs_of(req);
	struct l1_usage u;
	struct statvfs sv;
	(void)ino;

	int r = l1fs_intact(fs);
	if (r == 0)
		r = l1_arena_usage(fs->arena, &u);
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
	struct l1fs *fs = l1fs_of(req);
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
	struct l1fs *fs = l1fs_of(req);
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
	.open = l1fs_op_open,
	.read = l1fs_op_read,
	.write = l1fs_op_write,
	.flush = l1fs_op_flush,
	.fsync = l1fs_op_fsync,
	.release = l1fs_op_release,
	.fallocate = l1fs_op_fallocate,
	.opendir = l1fs_op_opendir,
	.readdir = l1fs_op_readdir,
	.readdirplus = l1fs_op_readdirplus,
	.releasedir = l1fs_op_releasedir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};
