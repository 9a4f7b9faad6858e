/*
 * file.c - open files of the view: objects/ID (the object's bytes), meta/ID
 * and the generated files, and the list of open handles.
 *
 * Invariants:
 *   - an open object file holds its object (l1_hold at open, l1_release at
 *     release); reads are served from that hold, so a reader (and every mmap
 *     of the file, which keeps it open) never sees the bytes of whoever gets
 *     the memory next, even after `rm` (the object is DOOMED until then);
 *   - writes go only to ALLOCATED objects, through handles opened for writing
 *     by the record's owner (or root); the state is checked again at each
 *     write, so a publish under an open handle makes the next write EROFS;
 *   - published objects are immutable, so their page cache is kept across
 *     opens, except the first published open of an id that was opened while
 *     unpublished (its pages may predate the writer's last bytes);
 *   - generated files are rendered once per open into the handle and served
 *     with direct_io, so each `cat` sees the pool as it is then;
 *   - if the opener is gone before the open is answered, no release will
 *     come, so the handle is dropped there and then.
 * Locks: cache_lock guards the set of ids opened unpublished; handles_lock
 * the list of handles (which shutdown empties).  Each handler replies once.
 */
#include "l1fs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

void l1fs_handle_add(struct l1fs *fs, struct l1fs_handle *l, int is_dir)
{
	l->is_dir = is_dir;
	pthread_mutex_lock(&fs->handles_lock);
	l->next = fs->handles.next;
	l->prev = &fs->handles;
	l->next->prev = l;
	fs->handles.next = l;
	pthread_mutex_unlock(&fs->handles_lock);
}

void l1fs_handle_del(struct l1fs *fs, struct l1fs_handle *l)
{
	pthread_mutex_lock(&fs->handles_lock);
	if (l->next) {
		l->prev->next = l->next;
		l->next->prev = l->prev;
		l->next = l->prev = NULL;
	}
	pthread_mutex_unlock(&fs->handles_lock);
}

/* The reader behind a hold l1fs takes for it: its pid (of the thread that
 * opened, as FUSE reports it) and command name, shown in clients and
 * metrics so that a reader keeping a file open is seen, not just l1fs. */
static void opener_note(fuse_req_t req, struct l1fs_handle *l, uint64_t id)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	char path[64];
	l->opener = ctx ? ctx->pid : 0;
	l->held = id;
	snprintf(path, sizeof path, "/proc/%d/comm", (int)l->opener);
	FILE *f = l->opener > 0 ? fopen(path, "re") : NULL;
	if (f) {
		if (fgets(l->comm, sizeof l->comm, f))
			l->comm[strcspn(l->comm, "\n")] = 0;
		fclose(f);
	}
}

static void fh_free(struct l1fs *fs, struct fh *h)
{
	if (!h)
		return;
	l1fs_handle_del(fs, &h->link);
	if (h->type == FH_OBJ) {
		if (!l1fs_intact(fs))   /* a damaged pool's records are not touched */
			l1_release(fs->arena, h->id);
		/* the last file closed after a stop signal: now it may stop */
		if (atomic_fetch_sub(&fs->open_files, 1) == 1 && atomic_load(&fs->stop_signal))
			kill(getpid(), atomic_load(&fs->stop_signal));
	}
	l1fs_buf_free(&h->text);
	free(h);
}

static int open_text(struct l1fs *fs, fuse_ino_t ino, struct fh *h)
{
	struct l1_obj_info oi;
	int r;

	h->type = FH_TEXT;
	if (ino == L1FS_INO_STATS && l1fs_intact(fs))
		return l1fs_intact_render(fs, &h->text);
	if ((r = l1fs_intact(fs)) < 0)
		return r;
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
		if (!l1fs_caller_owns(req, &oi))
			return -EACCES;
	}
	r = l1_hold(fs->arena, id, &obj);
	if (r < 0)
		return r;
	h->type = FH_OBJ;
	h->id = id;
	h->ptr = obj.ptr;
	h->size = obj.data_size;        /* reads end there: st_size */
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

void l1fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct l1fs *fs = l1fs_of(req);
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
	if (h->type == FH_OBJ)
		opener_note(req, &h->link, h->id);
	l1fs_handle_add(fs, &h->link, 0);
	/* if the opener is gone (interrupted), no release will come */
	if (fuse_reply_open(req, fi) != 0)
		fh_free(fs, h);
}

void l1fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	struct l1fs *fs = l1fs_of(req);
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
		int r = l1fs_intact(fs);        /* before touching the object's bytes */
		if (r < 0) {
			fuse_reply_err(req, EIO);
			return;
		}
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

void l1fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	struct l1fs *fs = l1fs_of(req);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	struct l1_obj_info oi;
	int r = 0;
	(void)ino;

	if (h->type != FH_OBJ || !h->writable)
		r = -EBADF;
	else if (off < 0)
		r = -EINVAL;
	else if ((r = l1fs_obj_get(fs, h->id, 1, &oi)) < 0)
		r = r == -EIO ? r : -EROFS;     /* freed under the handle */
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

void l1fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino; (void)fi;
	fuse_reply_err(req, 0);
}

void l1fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	(void)ino; (void)datasync; (void)fi;
	fuse_reply_err(req, 0);
}

void l1fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fh_free(l1fs_of(req), (struct fh *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

void l1fs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			 off_t length, struct fuse_file_info *fi)
{
	(void)ino; (void)mode; (void)offset; (void)length; (void)fi;
	fuse_reply_err(req, EOPNOTSUPP);
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
			l1fs_dir_free(fs, l);
		else
			fh_free(fs, (struct fh *)l);
	}
}
