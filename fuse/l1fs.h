/*
 * l1fs.h - what the files of l1fs (the FUSE view of an l1arena pool) share:
 * the daemon state (one struct l1fs, handed to fuse_session_new as userdata;
 * there are no globals), the inode numbering, the open-file handles, and the
 * helpers each file exports.  l1fs is a client of arena/l1arena.h like any
 * other: it keeps no copy of the pool's state, every request reads the
 * records afresh, so nothing here can go stale except what the kernel caches
 * for the entry/attr timeouts.
 *
 * Inodes are stateless: the node id the kernel hands back names its object
 * directly (its id with the kind folded in, see l1fs_ino), so lookup counts
 * need no table and forget is a no-op.  Object ids carry the slot's
 * generation, so a reused slot is a new inode and never inherits the page
 * cache or dentries of its predecessor.
 *
 * Locks: the library serialises everything on the pool; struct l1fs has a
 * mutex (cache_lock) for the set of ids opened before they were published,
 * one (handles_lock) for the list of open handles, and the reaper's own
 * mutex/condvar.  Counters are atomics.
 */
#ifndef L1FS_H
#define L1FS_H

/* 3.12: fuse_parse_cmdline and fuse_session_loop_mt with the opaque loop
 * config (an older version silently selects the old ABI of both) */
#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "l1arena.h"

/* ---- inode numbers ----------------------------------------------------- */

enum l1fs_kind {
	L1FS_K_FIXED = 0,               /* root and the files/dirs below it */
	L1FS_K_OBJ = 1,                 /* objects/ID */
	L1FS_K_META = 2,                /* meta/ID */
	L1FS_K_KEY = 3,                 /* keys/KEY, a symlink; id = its object */
};

enum l1fs_fixed_ino {
	L1FS_INO_ROOT = 1,              /* FUSE_ROOT_ID */
	L1FS_INO_OBJECTS = 2,
	L1FS_INO_KEYS = 3,
	L1FS_INO_META = 4,
	L1FS_INO_STATS = 5,
	L1FS_INO_METRICS = 6,
	L1FS_INO_CLIENTS = 7,
	L1FS_INO_FIXED_MAX = 7,
};

/* An object id is generation << 32 | slot, and a live object's generation
 * is never 0.  Its node id keeps the generation, puts the kind in bits 30-31
 * and the slot below: unique for every slot under 2^30 (a pool has far fewer
 * records), and never equal to a fixed node (generation 0). */
#define L1FS_SLOT_BITS 30
#define L1FS_SLOT_MASK ((1ull << L1FS_SLOT_BITS) - 1)
#define L1FS_GEN_MASK 0xffffffff00000000ull

static inline fuse_ino_t l1fs_ino(unsigned kind, uint64_t id)
{
	return (id & L1FS_GEN_MASK) | ((uint64_t)kind << L1FS_SLOT_BITS) |
	       (id & L1FS_SLOT_MASK);
}
static inline unsigned l1fs_ino_kind(fuse_ino_t ino)
{
	if (!((uint64_t)ino & L1FS_GEN_MASK))
		return L1FS_K_FIXED;
	return (unsigned)(((uint64_t)ino >> L1FS_SLOT_BITS) & 3);
}
static inline uint64_t l1fs_ino_id(fuse_ino_t ino)
{
	return ((uint64_t)ino & L1FS_GEN_MASK) | ((uint64_t)ino & L1FS_SLOT_MASK);
}
/* Ids the view can name: a generation, and a slot under 2^30. */
static inline int l1fs_id_nameable(uint64_t id)
{
	return (id & L1FS_GEN_MASK) && !(id & 0xffffffffull & ~L1FS_SLOT_MASK);
}

/* ---- daemon state ------------------------------------------------------ */

struct l1fs_idset {                     /* open addressing, 0 = empty slot */
	uint64_t *v;
	size_t cap, n;
};

/* Open files and directories, linked so that shutdown can let go of those
 * the kernel never released (lazy unmount, signals). */
struct l1fs_handle {
	struct l1fs_handle *prev, *next;
	int is_dir;
	pid_t opener;                   /* who opened it (fuse_req_ctx), for display */
	uint64_t held;                  /* the object it holds, or 0 */
	char comm[16];                  /* the opener's command name */
};

struct l1fs {
	struct l1_arena *arena;
	struct fuse_session *se;
	uint64_t pool_id;
	char *arena_path;
	uid_t uid;                      /* owner of the fixed nodes */
	gid_t gid;
	double entry_timeout;           /* objects, meta, keys */
	double attr_timeout;
	unsigned gc_interval_ms;        /* 0 = no periodic gc */
	unsigned read_ahead_kb;         /* set at the first request; 0 = no */
	_Atomic int read_ahead_set;
	char *mountpoint;               /* absolute */
	struct timespec mount_time;

	/* ids opened while unpublished: their page cache may hold bytes the
	 * writer has changed since, so their first published open drops it */
	pthread_mutex_t cache_lock;
	struct l1fs_idset cached;

	pthread_mutex_t handles_lock;
	struct l1fs_handle handles;     /* list head */

	/* the reaper (reaper.c) */
	pthread_t reaper;
	int reaper_started;
	pthread_mutex_t reaper_lock;
	pthread_cond_t reaper_cond;
	int reaper_stop;
	void *reaper_seen;              /* last listing, for invalidation */

	_Atomic uint64_t gc_runs;
	_Atomic uint64_t gc_objects;
	_Atomic uint64_t gc_bytes;
	_Atomic uint64_t gc_dirty;
	_Atomic uint64_t gc_holds;
	_Atomic uint64_t gc_clients;
	_Atomic uint64_t gc_errors;
	_Atomic uint64_t gc_last_ns;
	_Atomic uint64_t invalidated;
	_Atomic uint64_t open_files;
	_Atomic int stop_signal;        /* a stop signal waits for open files */
	_Atomic uint64_t requests_refused;

	/* intact.c: the pool file's size at attach, and what it was found
	 * shrunk to (UINT64_MAX: not shrunk) */
	int pool_fd;
	uint64_t pool_size;
	_Atomic uint64_t truncated_to;
};

/* ---- text buffers (text.c) --------------------------------------------- */

struct l1fs_buf {
	char *p;
	size_t len, cap;
	int oom;                        /* an append failed: the text is cut */
};

void l1fs_buf_printf(struct l1fs_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void l1fs_buf_free(struct l1fs_buf *b);
/* "1.50 GiB" */
const char *l1fs_fmt_size(uint64_t bytes, char *buf, size_t len);
/* "2024-05-01T12:00:00.123456789Z"; "-" for 0 */
const char *l1fs_fmt_time(uint64_t ns, char *buf, size_t len);
/* A Prometheus label value, escaped (\\, \", \n) */
void l1fs_buf_label(struct l1fs_buf *b, const char *s);

/* ---- key names (keyname.c) --------------------------------------------- */

/* keys/ entry name of a key: percent-encoding, or '@' + hex when that would
 * not fit in NAME_MAX.  Returns the length, or -ENAMETOOLONG. */
int l1fs_key_encode(const char *key, char *name, size_t len);
/* The key a keys/ name stands for; -ENOENT for a name that no key encodes
 * to (so each key has exactly one name). */
int l1fs_key_decode(const char *name, char *key, size_t len);
/* Parses a canonical decimal object id ("0", "4294967297"; no sign, no
 * leading zeros): 0 or -ENOENT. */
int l1fs_parse_id(const char *name, uint64_t *id);

/* ---- attributes (attr.c) ----------------------------------------------- */

#define L1FS_FIXED_TIMEOUT 3600.0       /* entry/attr timeout of fixed nodes */
#define L1FS_N_ROOT 6

struct l1fs_root_entry {
	const char *name;
	fuse_ino_t ino;
};
/* The root directory: objects, keys, meta, stats, metrics, clients. */
extern const struct l1fs_root_entry l1fs_root[L1FS_N_ROOT];

static inline struct l1fs *l1fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}
/* The request comes from the record's owner, or root. */
int l1fs_caller_owns(fuse_req_t req, const struct l1_obj_info *oi);

/* Whether a state is shown in objects/ (live and not freed). */
int l1fs_state_listed(uint32_t state);
/* The stat of an object, its meta file or its key symlink. */
void l1fs_obj_stat(const struct l1fs *fs, unsigned kind,
		   const struct l1_obj_info *oi, struct stat *st);
/* The stat of a fixed node; -ENOENT if ino is none. */
int l1fs_fixed_stat(struct l1fs *fs, fuse_ino_t ino, struct stat *st);
/* Record of an id as a view node: 0, or -ENOENT (gone, reused, freed).
 * any_state also accepts DOOMED (an open file's object after rm). */
int l1fs_obj_get(struct l1fs *fs, uint64_t id, int any_state,
		 struct l1_obj_info *oi);
/* Maps a library error to the errno a shell user expects. */
int l1fs_errno(int err);

/* ---- rendered files (render.c) ----------------------------------------- */

int l1fs_render_stats(struct l1fs *fs, struct l1fs_buf *b);
int l1fs_render_metrics(struct l1fs *fs, struct l1fs_buf *b);
int l1fs_render_clients(struct l1fs *fs, struct l1fs_buf *b);
int l1fs_render_meta(struct l1fs *fs, const struct l1_obj_info *oi,
		     struct l1fs_buf *b);
/* One extended attribute of an object: its length, -ENODATA if the object
 * has none by that name.  l1fs_xattr_names lists the names (NUL-separated). */
int l1fs_xattr_get(struct l1fs *fs, const struct l1_obj_info *oi,
		   const char *name, struct l1fs_buf *b);
void l1fs_xattr_names(const struct l1_obj_info *oi, struct l1fs_buf *b);

/* ---- a shrunk pool file (intact.c) ------------------------------------- */

void l1fs_intact_init(struct l1fs *fs, int fd, uint64_t size);
/* 0, or -EIO once the pool file is found shorter than at attach (then for
 * good; logged once).  Called before every library call that reads the
 * mapping. */
int l1fs_intact(struct l1fs *fs);
/* What `stats` says instead of the usage once the pool is damaged. */
int l1fs_intact_render(struct l1fs *fs, struct l1fs_buf *b);

/* ---- id sets (idset.c) ------------------------------------------------- */

int l1fs_idset_add(struct l1fs_idset *s, uint64_t id);
/* 1 if it was there (and is now removed), 0 if not. */
int l1fs_idset_take(struct l1fs_idset *s, uint64_t id);
void l1fs_idset_free(struct l1fs_idset *s);

/* ---- the low-level operations (ops.c, file.c, dir.c) ------------------- */

extern const struct fuse_lowlevel_ops l1fs_ops;

void l1fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void l1fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi);
void l1fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		   off_t off, struct fuse_file_info *fi);
void l1fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void l1fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		   struct fuse_file_info *fi);
void l1fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void l1fs_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
		       off_t length, struct fuse_file_info *fi);
void l1fs_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void l1fs_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi);
void l1fs_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi);
void l1fs_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* The list of open handles (file.c); a directory's is freed by dir.c. */
void l1fs_handle_add(struct l1fs *fs, struct l1fs_handle *l, int is_dir);
void l1fs_handle_del(struct l1fs *fs, struct l1fs_handle *l);
void l1fs_dir_free(struct l1fs *fs, struct l1fs_handle *l);
/* After the session loop: frees the handles still open (their holds go). */
void l1fs_handles_free(struct l1fs *fs);

/* ---- the reaper (reaper.c) --------------------------------------------- */

int l1fs_reaper_start(struct l1fs *fs);
/* bdi.c: sets read_ahead_kb of the l1fs mount at mountpoint (root only).
 * l1fs_first_request does it once, after INIT (whose reply resets it). */
int l1fs_set_readahead(const char *mountpoint, unsigned kb);
void l1fs_first_request(struct l1fs *fs);
void l1fs_reaper_stop(struct l1fs *fs);

#endif
