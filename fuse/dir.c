/*
 * dir.c - listing the view's directories.  The root is a fixed table; a
 * listing of objects/, meta/ or keys/ is taken in one pass over the records
 * (l1_obj_list, LIST_BATCH records per pool-lock hold) when a reader starts
 * at offset 0, kept in the directory handle, and served from there, so one
 * `ls` sees one consistent listing and offsets stay valid between calls.
 * Entries carry full attributes (readdirplus), so `ls -l` of a big objects/
 * costs no lookup or getattr per file.  Only ALLOCATED and PUBLISHED objects
 * are listed (freed ones are gone, as unlinked files are).  The kernel
 * serialises calls on one directory handle, so the handle needs no lock.
 * Each handler replies once.
 */
#include "l1fs.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_BATCH 1024

struct dent {
	uint64_t id;
	uint64_t size, data_size;
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

void l1fs_dir_free(struct l1fs *fs, struct l1fs_handle *l)
{
	struct dirh *d = (struct dirh *)l;
	l1fs_handle_del(fs, &d->link);
	free(d->v);
	l1fs_buf_free(&d->names);
	free(d);
}

void l1fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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
	l1fs_handle_add(l1fs_of(req), &d->link, 1);
	if (fuse_reply_open(req, fi) != 0)
		l1fs_dir_free(l1fs_of(req), &d->link);
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
	e->data_size = oi->obj.data_size;
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
	if ((r = l1fs_intact(fs)) < 0) {
		free(batch);
		return r;
	}
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
	oi->obj.data_size = e->data_size;
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
	struct l1fs *fs = l1fs_of(req);
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
	total = 2 + (d->ino == L1FS_INO_ROOT ? L1FS_N_ROOT : d->n);
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
			name = l1fs_root[i - 2].name;
			e.ino = l1fs_root[i - 2].ino;
			l1fs_fixed_stat(fs, e.ino, &e.attr);
			e.attr_timeout = e.entry_timeout = L1FS_FIXED_TIMEOUT;
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

void l1fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 0);
}

void l1fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, 1);
}

void l1fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	l1fs_dir_free(l1fs_of(req), (struct l1fs_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}
