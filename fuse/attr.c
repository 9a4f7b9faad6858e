/*
 * attr.c - what `stat` says about each node of the view.  Objects take
 * size (the data size; st_blocks counts the whole block), owner, group and
 * mode from their record; a published (or freed but
 * still open) object loses its write bits, since its bytes are immutable;
 * mtime is the publish time (the allocation time before that), ctime the
 * allocation time.  An object freed while open (DOOMED) keeps answering
 * fstat with nlink 0, like an unlinked file.  Fixed nodes belong to the user
 * who mounted the view; meta/ID shows the read bits of its object (reading
 * a record needs what reading the object needs).  Generated files (stats, metrics, clients, meta/ID)
 * report size 0, like /proc: they are opened with direct_io and rendered
 * afresh at each open.  Reads records through the library only; no locks.
 */
#include "l1fs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define OBJ_BLKSIZE (1u << 20)          /* lets cat/cp use 1 MiB reads */

const struct l1fs_root_entry l1fs_root[L1FS_N_ROOT] = {
	{ "objects", L1FS_INO_OBJECTS },
	{ "keys", L1FS_INO_KEYS },
	{ "meta", L1FS_INO_META },
	{ "stats", L1FS_INO_STATS },
	{ "metrics", L1FS_INO_METRICS },
	{ "clients", L1FS_INO_CLIENTS },
};

int l1fs_caller_owns(fuse_req_t req, const struct l1_obj_info *oi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	return ctx->uid == 0 || ctx->uid == oi->uid;
}

int l1fs_state_listed(uint32_t state)
{
	return state == L1_STATE_ALLOCATED || state == L1_STATE_PUBLISHED;
}

int l1fs_errno(int err)
{
	if (err >= 0)
		return 0;
	switch (-err) {
	case ESTALE:
	case EALREADY:
		return ENOENT;
	case EPROTO:
	case EBADMSG:
		return EIO;
	case ETIMEDOUT:         /* the pool lock stayed busy (stats names its holder) */
		fprintf(stderr, "l1fs: answering EAGAIN: %s\n", l1_last_error());
		return EAGAIN;
	default:
		return -err < 4096 ? -err : EIO;
	}
}

int l1fs_obj_get(struct l1fs *fs, uint64_t id, int any_state,
		 struct l1_obj_info *oi)
{
	if (!l1fs_id_nameable(id))
		return -ENOENT;
	int r = l1fs_intact(fs);
	if (r < 0)
		return r;
	r = l1_obj_info(fs->arena, id, oi);
	if (r < 0)
		return r == -ENOMEM || r == -EIO ? r : -ENOENT;
	if (oi->obj.id != id)
		return -ENOENT;
	if (l1fs_state_listed(oi->state))
		return 0;
	if (any_state && oi->state == L1_STATE_DOOMED)
		return 0;
	return -ENOENT;
}

static void set_ts(struct timespec *ts, uint64_t ns)
{
	ts->tv_sec = (time_t)(ns / 1000000000ull);
	ts->tv_nsec = (long)(ns % 1000000000ull);
}

void l1fs_obj_stat(const struct l1fs *fs, unsigned kind,
		   const struct l1_obj_info *oi, struct stat *st)
{
	uint64_t mtime = oi->publish_ns ? oi->publish_ns : oi->ctime_ns;
	(void)fs;

	memset(st, 0, sizeof *st);
	st->st_ino = l1fs_ino(kind, oi->obj.id);
	st->st_uid = oi->uid;
	st->st_gid = oi->gid;
	st->st_nlink = 1;
	set_ts(&st->st_mtim, mtime);
	set_ts(&st->st_atim, mtime);
	set_ts(&st->st_ctim, oi->ctime_ns);
	switch (kind) {
	case L1FS_K_OBJ:
		st->st_mode = S_IFREG | (oi->mode & 07777);
		if (oi->state != L1_STATE_ALLOCATED)
			st->st_mode &= ~(mode_t)0222;
		if (oi->state == L1_STATE_DOOMED)
			st->st_nlink = 0;
		/* the data size; the block behind it shows in st_blocks, like
		 * the allocated blocks of a file */
		st->st_size = (off_t)oi->obj.data_size;
		st->st_blksize = OBJ_BLKSIZE;
		st->st_blocks = (blkcnt_t)((oi->obj.size + 511) / 512);
		break;
	case L1FS_K_META:
		/* the record says what the object's bytes and xattrs say: the
		 * same read permission (default_permissions checks it) */
		st->st_mode = S_IFREG | (oi->mode & 0444);
		st->st_blksize = 4096;
		break;
	case L1FS_K_KEY: {
		char target[64];
		int n = snprintf(target, sizeof target, "../objects/%llu",
				 (unsigned long long)oi->obj.id);
		st->st_mode = S_IFLNK | 0777;
		st->st_size = n;
		break;
	}
	}
}

int l1fs_fixed_stat(struct l1fs *fs, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_atim = st->st_mtim = st->st_ctim = fs->mount_time;
	st->st_blksize = 4096;
	switch (ino) {
	case L1FS_INO_ROOT:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 5;
		break;
	case L1FS_INO_OBJECTS:
	case L1FS_INO_KEYS:
		/* writable + sticky: rm works for an object's owner (and root)
		 * only, enforced by the kernel before we check again */
		st->st_mode = S_IFDIR | 01777;
		st->st_nlink = 2;
		break;
	case L1FS_INO_META:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		break;
	case L1FS_INO_STATS:
	case L1FS_INO_METRICS:
	case L1FS_INO_CLIENTS:
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		break;
	default:
		return -ENOENT;
	}
	return 0;
}
