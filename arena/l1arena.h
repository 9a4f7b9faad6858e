/*
 * l1arena.h - the public interface of libl1arena, the L1 tier of a KV-cache
 * store: a pool of host memory in one hugetlbfs file that every process maps
 * MAP_SHARED, with allocations tracked in a bitmap inside that file (no server
 * in the data path).  Processes allocate MemoryObjs by tensor layout and count
 * (all or nothing), fill them, publish them under a key, hold them while
 * reading, and free them; freed memory is zeroed (io_uring) before it is
 * handed out again.  This is the only header other folders include.
 *
 * Conventions: every call returns 0 (or a count) on success and a negative
 * errno on failure; l1_strerror() names the code and l1_last_error() gives the
 * calling thread's sentence about the most recent failure (like dlerror()).
 * Handles are opaque; close/free functions accept NULL.  All calls on one
 * struct l1_arena are thread-safe, and any number of processes may attach the
 * same pool at once.  A handle belongs to the process that opened it: every
 * call on a copy inherited across fork() is -EBADF (close it, open another).
 *
 * Trust (README, "Trust and liveness"): a process that opens the pool
 * read-write can change all of it, so a pool is one trust domain; one pool
 * per tenant.  The owner/mode checks on free, publish, lookup and hold stop
 * accidents, not such a process.
 *
 * Error codes used throughout:
 *   -ENOMEM   OUT_OF_MEMORY: not enough free (zeroed) space; nothing changed
 *   -ENOSPC   the object table is full (max_objects); nothing changed
 *   -EINVAL   bad argument (the message names it)
 *   -EALREADY the object was already freed (double free)
 *   -ESTALE   the id names a slot that has since been reused
 *   -EXDEV    the object belongs to another pool
 *   -ENOENT   no such object / key / pool
 *   -EEXIST   key already published, or pool exists (create without force)
 *   -EPERM    not the owner (free, publish, chmod), or a write call on a
 *             read-only handle
 *   -EACCES   the object's uid/gid/mode do not let this process read it
 *             (lookup, get, hold)
 *   -EBADF    the handle was inherited across fork(): open your own
 *   -EBUSY    the object is held, or the pool is in use
 *   -EPROTO   the pool file has another format version
 *   -EBADMSG  the pool file is not a valid pool (corrupt, truncated)
 */
#ifndef L1ARENA_H
#define L1ARENA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define L1_VERSION_MAJOR 1
#define L1_VERSION_MINOR 0

#define L1_MAX_TENSORS 4      /* tensors per layout */
#define L1_MAX_DIMS 8         /* dimensions per tensor */
#define L1_KEY_MAX 127        /* bytes in a key, without the NUL */
#define L1_PATH_MAX 256       /* bytes in a pool path, with the NUL */
#define L1_REASON_MAX 128     /* bytes in a status sentence, with the NUL */

#define L1_DEFAULT_PATH "/dev/hugepages/l1arena"
#define L1_DEFAULT_ALIGN 4096ull
#define L1_DEFAULT_GROW_STEP (1ull << 30)
#define L1_DEFAULT_LAZY_INIT (20ull << 30)
#define L1_HUGEPAGE_2M (2ull << 20)
#define L1_HUGEPAGE_1G (1ull << 30)

/* ---- errors ------------------------------------------------------------ */

const char *l1_strerror(int err);
const char *l1_last_error(void);

/* ---- dtypes and layouts ------------------------------------------------ */

enum l1_dtype {
	L1_DTYPE_INVALID = 0,
	L1_DTYPE_FP16 = 1,
	L1_DTYPE_BF16 = 2,
	L1_DTYPE_FP32 = 3,
	L1_DTYPE_FP64 = 4,
	L1_DTYPE_INT8 = 5,
	L1_DTYPE_UINT8 = 6,
	L1_DTYPE_INT16 = 7,
	L1_DTYPE_INT32 = 8,
	L1_DTYPE_INT64 = 9,
	L1_DTYPE_FP8_E4M3 = 10,
	L1_DTYPE_FP8_E5M2 = 11,
	L1_DTYPE_BOOL = 12,
	L1_DTYPE_UINT16 = 13,
	L1_DTYPE_UINT32 = 14,
	L1_DTYPE_UINT64 = 15,
	L1_DTYPE_COUNT
};

/* Bytes per element, or 0 for an unknown dtype. */
uint32_t l1_dtype_size(uint32_t dtype);
/* "fp16", "bf16", ...; "invalid" for an unknown dtype. */
const char *l1_dtype_name(uint32_t dtype);
/* Parses a name ("fp16", "float16", "half", "bf16", "fp8_e4m3", ...): a dtype
 * or L1_DTYPE_INVALID. */
uint32_t l1_dtype_parse(const char *name);

struct l1_tensor {
	uint32_t dtype;                 /* enum l1_dtype */
	uint32_t ndim;                  /* 0..L1_MAX_DIMS (0 = scalar) */
	uint64_t shape[L1_MAX_DIMS];
};

struct l1_layout {
	uint32_t ntensors;              /* 1..L1_MAX_TENSORS */
	uint32_t reserved;
	struct l1_tensor t[L1_MAX_TENSORS];
};

/* Sum of the tensors' bytes (not rounded).  -EINVAL for an empty layout,
 * an unknown dtype, too many tensors/dims, or a size that overflows. */
int l1_layout_bytes(const struct l1_layout *l, uint64_t *out);
/* Writes "[2,32,128]:fp16;[4]:int32" into buf; returns its length. */
int l1_layout_format(const struct l1_layout *l, char *buf, size_t len);
/* Parses the format above (also "[2,32,128] fp16"); -EINVAL with a message. */
int l1_layout_parse(const char *s, struct l1_layout *out);
/* Byte offset of tensor i inside an object of this layout (tensors are laid
 * out back to back, each starting at a multiple of its element size). */
int l1_layout_tensor_offset(const struct l1_layout *l, uint32_t i, uint64_t *off);

/* ---- configuration (the C form of L1MemoryManagerConfig) ---------------- */

enum l1_pin_mode {
	L1_PIN_OFF = 0,                 /* never register with CUDA */
	L1_PIN_AUTO = 1,                /* register where a GPU is usable */
	L1_PIN_DEFER = 2,               /* like AUTO, but at first use */
};

enum l1_zero_method {
	L1_ZERO_AUTO = 0,               /* io_uring, else memset fallback */
	L1_ZERO_URING = 1,
	L1_ZERO_MEMSET = 2,
};

struct l1_config {
	uint32_t version;               /* set by l1_config_init */
	uint32_t reserved0;
	uint64_t size_bytes;            /* pool data size (required); exact: the
					 * backing is rounded up to the huge page,
					 * the usable data is not */
	uint64_t init_size_bytes;       /* lazy: committed at create; 0 = min(20 GiB, size) */
	uint64_t grow_step_bytes;       /* lazy growth / pin chunk; 0 = 1 GiB (capped to size) */
	uint64_t align_bytes;           /* block size; power of two, 0 = 4096 */
	uint64_t hugepage_size;         /* 0 = the mount's (2 MiB default); 2 MiB or 1 GiB */
	uint64_t max_objects;           /* 0 = size / 64 KiB, at least 1024 */
	const char *path;               /* NULL = $L1ARENA_PATH or L1_DEFAULT_PATH */
	int32_t lazy;                   /* 1 = grow on demand, 0 = eager */
	int32_t zero_on_free;           /* default 1 */
	int32_t zero_method;            /* enum l1_zero_method */
	int32_t pin;                    /* enum l1_pin_mode; default AUTO */
	int32_t pin_mapped;             /* also cudaHostRegisterMapped */
	int32_t allow_shm;              /* fall back to /dev/shm without huge pages: the
					 * path's own file system, or /dev/shm/<basename>
					 * when its directory is missing or hugetlbfs is
					 * full (never replacing a file; see
					 * l1_arena_path) */
	int32_t force;                  /* create over an existing pool */
	uint32_t mode;                  /* file mode of the pool; default 0600 */
};

void l1_config_init(struct l1_config *c);
/* Fills in defaults, then checks every field: 0, or -EINVAL with a message
 * naming the field in l1_last_error(). */
int l1_config_validate(const struct l1_config *c);

/* ---- pools ------------------------------------------------------------- */

struct l1_arena;

struct l1_open_opts {
	int32_t pin;                    /* enum l1_pin_mode */
	int32_t pin_mapped;
	int32_t zero_method;            /* enum l1_zero_method */
	int32_t readonly;               /* O_RDONLY + PROT_READ: look up, get and read
					 * without the lock; writes and holds -EPERM
					 * (hold through the view: l1_open_path) */
	int32_t no_client;              /* do not take a client table slot */
	int32_t reserved[3];
};

void l1_open_opts_init(struct l1_open_opts *o);

/* Formats a new pool file and attaches to it. */
int l1_arena_create(const struct l1_config *c, struct l1_arena **out);
/* Attaches to the pool at exactly path (o may be NULL for defaults): -ENOENT
 * if there is none there; never another file in its place. */
int l1_arena_open(const char *path, const struct l1_open_opts *o,
		  struct l1_arena **out);
/* Detaches: waits for this process's zeroing, drops its holds, unpins.  A
 * handle does not survive fork(): a child opens its own (closing the one it
 * inherited only unmaps it). */
void l1_arena_close(struct l1_arena *a);
/* Removes the pool file at exactly path.  -EBUSY if live clients are
 * attached, unless force; -ENOENT if there is none. */
int l1_arena_destroy(const char *path, int force);
/* The path of the pool file this handle maps. */
const char *l1_arena_path(const struct l1_arena *a);

/* ---- objects ----------------------------------------------------------- */

enum l1_obj_state {
	L1_STATE_FREE = 0,
	L1_STATE_ALLOCATED = 1,         /* writer owns it, unpublished */
	L1_STATE_PUBLISHED = 2,         /* immutable, found by id and key */
	L1_STATE_DIRTY = 3,             /* freed, being zeroed */
	L1_STATE_DOOMED = 4,            /* freed while held: waits for last hold */
};
const char *l1_state_name(uint32_t state);

/* A MemoryObj as this process sees it.  An object has two sizes: its data
 * size, the bytes asked for (the layout's exact bytes, or the byte count of
 * l1_alloc_bytes), and its physical size, the block it occupies (the data
 * size rounded up to align).  `size` stays the physical size, the bytes a
 * caller may touch through ptr and what counts in used_bytes; `data_size`
 * is what the object holds: the view's st_size, what l1ctl get writes,
 * LMCache's get_size(). */
struct l1_obj {
	uint64_t id;                    /* generation << 32 | slot */
	uint64_t offset;                /* from the start of the pool file / vm space */
	uint64_t size;                  /* physical bytes (data_size rounded up to align) */
	void *ptr;                      /* base + offset in this process */
	uint64_t pool_id;               /* which pool it came from */
	uint32_t layout_id;             /* see l1_arena_layout() */
	uint32_t reserved;
	uint64_t data_size;             /* bytes of data (<= size) */
};

/* Allocates count objects of the layout: 0 with objs[0..count) filled, or
 * -ENOMEM / -ENOSPC with nothing allocated (all or nothing).  An object
 * larger than the pool is -ENOMEM too (it never fits); one larger than the
 * pool's grow step (but not the pool) is -EINVAL (a configuration limit). */
int l1_alloc(struct l1_arena *a, const struct l1_layout *l, uint32_t count,
	     struct l1_obj *objs);
/* Allocates by byte size (a one-tensor uint8 layout). */
int l1_alloc_bytes(struct l1_arena *a, uint64_t bytes, uint32_t count,
		   struct l1_obj *objs);
/* Frees a batch.  Checks the whole batch first: on any bad entry (double
 * free -EALREADY, stale, foreign, not allowed, or one object named twice in
 * the batch -EINVAL) nothing is freed and the error says which index.  Held objects become DOOMED and are freed when
 * their last hold goes. */
int l1_free(struct l1_arena *a, const struct l1_obj *objs, uint32_t count);
/* Frees by id (same checks). */
int l1_free_ids(struct l1_arena *a, const uint64_t *ids, uint32_t count);

/* Makes an ALLOCATED object immutable and findable by key (key may be NULL
 * to publish without a key).  Only the owner (or root) may publish. */
int l1_publish(struct l1_arena *a, uint64_t id, const char *key);
/* Finds a live (ALLOCATED or PUBLISHED) object by id / a PUBLISHED one by key. */
int l1_get(struct l1_arena *a, uint64_t id, struct l1_obj *out);
int l1_lookup(struct l1_arena *a, const char *key, struct l1_obj *out);
/* Holds: while any hold exists the object's bytes stay as they are.  Each
 * hold is counted per process; release what you hold. */
int l1_hold(struct l1_arena *a, uint64_t id, struct l1_obj *out);
int l1_hold_key(struct l1_arena *a, const char *key, struct l1_obj *out);
int l1_release(struct l1_arena *a, uint64_t id);

/* Everything a record says, for tools and the view. */
struct l1_obj_info {
	struct l1_obj obj;
	uint32_t state;                 /* enum l1_obj_state */
	uint32_t holds;
	int32_t owner_pid;
	uint32_t uid;
	uint32_t gid;
	uint32_t mode;
	uint64_t owner_start;           /* owner's start time (clock ticks since boot) */
	uint64_t ctime_ns;              /* CLOCK_REALTIME of allocation */
	uint64_t publish_ns;            /* of publish, 0 if not published */
	char key[L1_KEY_MAX + 1];
};
int l1_obj_info(struct l1_arena *a, uint64_t id, struct l1_obj_info *out);
/* Lists live objects (not FREE) with slot >= *cursor, up to max; sets
 * *cursor for the next call.  Returns the number written (0 at the end). */
int l1_obj_list(struct l1_arena *a, uint64_t *cursor, struct l1_obj_info *out,
		uint32_t max);
/* Sets the data size of an ALLOCATED object (LMCache's set_used_size: a
 * writer that used fewer bytes than it allocated): 1 <= bytes <= its
 * physical size.  Owner (or root) only; -EBUSY once published, since a
 * published object is immutable. */
int l1_obj_set_data_size(struct l1_arena *a, uint64_t id, uint64_t bytes);
/* Sets the owner uid/gid/mode of an object this process owns. */
int l1_obj_chmod(struct l1_arena *a, uint64_t id, uint32_t uid, uint32_t gid,
		 uint32_t mode);
/* The layout behind obj.layout_id. */
int l1_arena_layout(struct l1_arena *a, uint32_t layout_id, struct l1_layout *out);

/* ---- usage, stats, vm space -------------------------------------------- */

/* Lock-free: used and total bytes.  total is the configured size exactly
 * (config.size_bytes, not rounded to the huge page, also in lazy mode; see
 * committed in l1_usage); used counts physical sizes (whole blocks). */
void l1_get_memory_usage(struct l1_arena *a, uint64_t *used, uint64_t *total);

struct l1_usage {
	uint64_t used_bytes;            /* in live objects (allocated+published+doomed) */
	uint64_t total_bytes;           /* configured size (config.size_bytes) */
	uint64_t committed_bytes;       /* backed by pages now (lazy) */
	uint64_t dirty_bytes;           /* freed, awaiting zeroing */
	uint64_t free_bytes;            /* total - used - dirty */
	uint64_t largest_free_bytes;    /* largest free run in the committed part */
	uint64_t objects[5];            /* by enum l1_obj_state (FREE = free slots;
					 * DIRTY = freed extents awaiting zeroing:
					 * DIRTY records, and runs of freed objects
					 * whose records are free again) */
	uint64_t max_objects;
	uint64_t holds;
	uint64_t clients;
	uint64_t allocs;                /* objects allocated since create */
	uint64_t frees;
	uint64_t ooms;                  /* allocations refused for lack of space */
	uint64_t repairs;               /* lock-owner-died repairs */
	uint64_t zeroed_bytes;          /* by all processes since create */
	uint64_t zero_busy_ns;          /* time with zeroing in flight */
	uint64_t hugepage_size;
	uint64_t grow_step_bytes;
	uint64_t align_bytes;
	uint64_t metadata_bytes;        /* header, records, indexes, bitmaps */
	int32_t lazy;
	int32_t zero_on_free;
	int32_t grow_failed;            /* last growth failed (see grow_reason) */
	int32_t reserved;
	char backing[16];               /* "hugetlbfs" or "shm" */
	char zero_method[48];           /* this process's: "io_uring", "memset (...)" */
	char grow_reason[L1_REASON_MAX];
};
/* Counters are read without the lock; largest_free_bytes takes it (waiting
 * at most 100 ms: when it is busy longer, largest_free_bytes is 0 and
 * grow_reason names the lock's holder instead). */
int l1_arena_usage(struct l1_arena *a, struct l1_usage *u);

/* Bytes this process zeroed, by who did it: threads that allocated (an
 * allocation that found no clean run zeroed the dirty bytes it took),
 * threads that freed (small extents), and the background engine. */
struct l1_zero_split {
	uint64_t by_allocate;
	uint64_t by_free;
	uint64_t by_engine;
	uint64_t engine_skipped;        /* queued, then taken by an allocation */
};
int l1_arena_zero_split(struct l1_arena *a, struct l1_zero_split *out);

/* Every call that needs the pool lock waits for it at most this long
 * ($L1ARENA_LOCK_TIMEOUT_MS overrides it, 1 to 3600000); past it the call
 * fails with -ETIMEDOUT and l1_last_error() names the holder: pid, thread
 * and whether it runs, is stopped or is gone.  So a client stopped inside
 * the lock (SIGSTOP, a debugger, a frozen cgroup) stalls the others for at
 * most this long per call. */
#define L1_LOCK_WAIT_MS 5000

/* What stalls or strands: the lock's holder and what failed growth did.
 * Read without the lock. */
struct l1_health {
	int32_t lock_pid;               /* holds the pool lock now; 0: nobody */
	int32_t lock_tid;               /* its thread */
	uint64_t lock_held_ns;          /* for how long */
	char lock_state[32];            /* "running", "sleeping", "stopped", "dead", ... */
	uint64_t lock_wait_ms;          /* the bound on a lock wait, in this process */
	uint64_t lock_timeouts;         /* lock waits that gave up, by anyone */
	uint64_t grow_failures;         /* growths that failed */
	uint64_t grow_returned_bytes;   /* pages they had taken and gave back */
	char lock_text[L1_REASON_MAX];  /* the above as sentences, for tools */
	char grow_text[L1_REASON_MAX];
};
int l1_arena_health(struct l1_arena *a, struct l1_health *out);

struct l1_range {
	uint64_t offset;                /* from base */
	uint64_t len;
};

struct l1_vm_space {
	void *base;                     /* this process's mapping of the whole file */
	uint64_t size;                  /* bytes mapped (header + data) */
	int32_t fd;                     /* the pool file, open */
	uint32_t pinned;                /* ranges registered with CUDA in this process */
	uint64_t page_size;             /* huge page size (or 4096 on shm) */
	uint64_t data_offset;           /* where objects start */
	uint64_t data_size;             /* the usable data: config.size_bytes (the
					 * mapping may hold more, unused) */
	uint64_t committed;             /* bytes of data region backed now */
	uint64_t pool_id;
	char path[L1_PATH_MAX];
};
int l1_get_vm_space(struct l1_arena *a, struct l1_vm_space *out);
/* Ranges of the mapping registered with CUDA by this process: writes at
 * most max and returns how many there are (like snprintf, may exceed max). */
int l1_arena_pinned_ranges(struct l1_arena *a, struct l1_range *out, uint32_t max);

/* ---- clients ----------------------------------------------------------- */

enum l1_pin_status {
	L1_PIN_NONE = 0,                /* not asked */
	L1_PIN_PINNED = 1,
	L1_PIN_UNPINNED = 2,            /* asked but not possible: see reason */
	L1_PIN_DEFERRED = 3,
};

struct l1_client_info {
	int32_t pid;
	uint32_t pin_status;            /* enum l1_pin_status */
	uint64_t start_time;
	uint64_t attach_ns;
	uint64_t pinned_bytes;
	uint32_t holds;
	uint32_t alive;                 /* holds its lock byte (the kernel's word) */
	char pin_reason[L1_REASON_MAX];
	char zero_method[48];
};
/* The attached clients (pid and start time for display; liveness is the
 * lock each holds on the pool file, see README "Liveness"). */
int l1_arena_clients(struct l1_arena *a, struct l1_client_info *out, uint32_t max);

/* Who an attached process is, for people and monitoring: the same clients
 * as l1_arena_clients, in the same order (match them by pid and start_time). */
struct l1_client_owner {
	int32_t pid;
	uint32_t uid;                   /* effective uid at attach */
	uint64_t start_time;
	char comm[16];                  /* command name at attach, NUL-terminated */
};
int l1_arena_client_owners(struct l1_arena *a, struct l1_client_owner *out, uint32_t max);

/* Figures for a fleet's monitoring, beyond struct l1_usage: counters since
 * create (kept in the pool, so every process and every tool sees the same)
 * and the bytes of freed objects still held by readers.  Lock-free except
 * doomed_bytes, which walks the records. */
struct l1_stats {
	uint64_t zero_waits;            /* allocations that waited for zeroing */
	uint64_t zero_wait_ns;          /* the time they spent waiting */
	uint64_t gc_objects_reclaimed;  /* unpublished objects of dead writers */
	uint64_t gc_holds_dropped;      /* holds of dead processes */
	uint64_t gc_clients_dropped;    /* client slots of dead processes */
	uint64_t gc_dirty_requeued;     /* dirty extents a dead process was zeroing */
	uint64_t doomed_bytes;          /* freed but still held (DOOMED records) */
	uint64_t doomed_objects;
	uint64_t reserved[8];
};
int l1_arena_stats(struct l1_arena *a, struct l1_stats *s);

/* ---- maintenance ------------------------------------------------------- */

struct l1_gc_result {
	uint64_t objects_reclaimed;     /* unpublished objects of dead writers */
	uint64_t dirty_requeued;        /* dirty extents a dead or stopped process
					 * was zeroing */
	uint64_t holds_dropped;         /* holds of dead processes */
	uint64_t clients_dropped;
	uint64_t bytes_reclaimed;
};
int l1_arena_gc(struct l1_arena *a, struct l1_gc_result *r);
/* Waits until nothing is dirty (zeroing done), at most timeout_ms (-1: no
 * limit), running gc when it starts and again while nothing moves (so the
 * extents of a dead or stopped zeroer are taken over).  -ETIMEDOUT if dirty
 * bytes remain. */
int l1_arena_flush(struct l1_arena *a, int64_t timeout_ms);
/* Verifies every invariant of the shared state.  Returns the number of
 * problems (0 = clean) and describes them in report; with repair, rebuilds
 * the derived state (bitmap, key index, counters, free lists) from the
 * records first and reports what it changed. */
int l1_arena_memcheck(struct l1_arena *a, int repair, char *report, size_t len);

/* ---- the view ---------------------------------------------------------- */

/* Given a path inside a mounted l1fs view (objects/ID or keys/KEY), takes a
 * hold on that object and returns it mapped zero-copy from this process's
 * own mapping of the pool.  Release with l1_release(a, obj.id).  On a
 * read-only handle the hold is the view's: the file stays open until then. */
int l1_open_path(struct l1_arena *a, const char *view_path, struct l1_obj *out);
/* The name of a key in a view's keys/ directory ("model/layer 3" ->
 * "model%2Flayer%203"; see arena/viewname.c): its length, or -ENAMETOOLONG
 * for an empty or too long key or a buffer too small (256 bytes always do). */
int l1_key_view_name(const char *key, char *name, size_t len);

/* ---- host setup -------------------------------------------------------- */

/* Makes sure at least `pages` huge pages of page_size are free and not
 * reserved by anyone (raising nr_hugepages by what is missing; root only)
 * and that a hugetlbfs of that page size is mounted at mountpoint (NULL =
 * /dev/hugepages).  On a mount there already with a size= limit its own free
 * pages count, and more than it has is -ENOSPC.  Reports what it did in msg. */
int l1_setup_hugepages(uint64_t page_size, uint64_t pages, const char *mountpoint,
		       char *msg, size_t len);
/* Parses "512M", "8G", "4096", "1.5G": -EINVAL on anything else. */
int l1_parse_size(const char *s, uint64_t *out);

#ifdef __cplusplus
}
#endif
#endif
