/*
 * format.h - the shared format: what lives in the pool file, mapped by every
 * process at its own address.  Offsets, never pointers; fixed-width fields
 * only; reserved space; every size and offset pinned by static_assert so a
 * change to the format cannot slip in unnoticed (bump L1_FMT_MAJOR then).
 *
 * File:  header (4 KiB) | records | layouts | key buckets | bitmap | summary |
 *        hold entries | free-slot stack | clients | dirty extents |
 *        dirty free stack | pad to huge page | data.
 *
 * Truth and derived state: the records and the dirty extents (freed bytes
 * not yet zeroed whose record was already reused) are the truth.  The
 * bitmap, its summary, the free stacks, the key index, the hold chains and
 * the counters are derived and can always be rebuilt from the records, the
 * dirty extents and the hold entries (repair.c does that after a lock owner died, and for memcheck
 * --repair).  Everything below "under the lock" is written only with the
 * header's robust mutex held; the atomics may be read without it.  The
 * creator writes everything, then stores the magic with release semantics.
 *
 * Liveness (format 3): every attached read-write handle holds an
 * open-file-description lock (F_OFD_SETLK) on the first byte of its client
 * table entry in this file (clients_off + slot * L1_CLIENT_SIZE); a client
 * is alive exactly while someone holds that byte (F_OFD_GETLK, the same
 * answer in every namespace; the kernel drops the lock when the handle
 * closes or its process is entirely gone).  Owners are named by a client
 * tag, slot | generation << L1_CLIENT_BITS (the slot's gen, bumped when it
 * is taken): records (owner_client; zeroer_client while DIRTY), hold
 * entries (client) and dirty extents (zeroer_client).  pid and start time
 * are for display only.  A live client's zeroing may be taken over once its
 * beat_ms is older than the lease (L1_LEASE_MS, internal.h); a takeover bumps
 * the extent's gen, the zeroing engine's cookie.  nclients is derived (the
 * LIVE entries).  Pools of format 2 and older judged liveness by /proc and
 * are refused.
 */
#ifndef L1_FORMAT_H
#define L1_FORMAT_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "l1arena.h"

#define L1_MAGIC 0x31414e455241314cull   /* "L1ARENA1" little-endian */
#define L1_FMT_MAJOR 3
#define L1_FMT_MINOR 0
#define L1_HDR_SIZE 4096u
#define L1_REC_SIZE 256u
#define L1_LAYOUT_SLOT_SIZE 320u
#define L1_CLIENT_SIZE 256u
#define L1_HOLD_SIZE 16u
#define L1_DIRTY_SIZE 32u
#define L1_MAX_LAYOUTS 1024u
#define L1_MAX_CLIENTS 1024u
#define L1_NIL 0u                       /* "no entry" in index+1 links */

enum { L1_BACKING_HUGETLBFS = 1, L1_BACKING_SHM = 2 };

/* A queue of turns (turn.c): tickets taken from next, served in order. */
struct l1_queue {
	_Atomic uint32_t next;          /* the next ticket to hand out */
	_Atomic uint32_t serving;       /* the ticket whose turn it is */
	_Atomic uint32_t turn_ms;       /* CLOCK_MONOTONIC ms when that turn began */
};

struct l1_hdr {
	/* identity and geometry: written once by the creator */
	uint64_t magic;                 /* 0 until the pool is ready */
	uint32_t major;
	uint32_t minor;
	uint32_t hdr_size;
	uint32_t rec_size;
	uint64_t file_size;             /* bytes mapped */
	uint64_t data_off;              /* multiple of the huge page */
	uint64_t data_size;             /* data region: the pool size rounded up to the
					 * huge page (what is backed and mapped) */
	uint64_t block_size;            /* = align_bytes */
	uint64_t nblocks;
	uint64_t grow_step;             /* lazy step = pin chunk; objects stay inside one */
	uint64_t hugepage_size;
	uint64_t pool_id;               /* random, tells pools apart */
	uint64_t create_ns;
	uint64_t max_objects;
	uint64_t records_off;
	uint64_t layouts_off;
	uint64_t max_layouts;
	uint64_t buckets_off;
	uint64_t nbuckets;              /* power of two */
	uint64_t bitmap_off;
	uint64_t bitmap_words;
	uint64_t summary_off;
	uint64_t summary_words;
	uint64_t holds_off;
	uint64_t max_holds;
	uint64_t slots_off;
	uint64_t clients_off;
	uint64_t max_clients;
	uint32_t lazy;
	uint32_t zero_on_free;
	uint32_t backing;               /* L1_BACKING_* */
	uint32_t mode;
	uint64_t dirty_off;             /* dirty-extent table */
	uint64_t max_dirty;             /* its entries (0: zero-on-free off) */
	uint64_t dirty_stack_off;       /* its free stack: max_dirty x u32 */
	uint64_t pool_size;             /* the size asked for (reserved_geom[0] before):
					 * the usable data, total of usage; nblocks =
					 * pool_size / block_size; <= data_size */
	uint64_t reserved_geom[7];      /* to 320 */

	/* under the lock */
	uint8_t lock[64];               /* pthread_mutex_t, robust + pshared */
	uint64_t slot_top;              /* entries in the free-slot stack */
	uint64_t hold_free;             /* free hold entries: index+1 list */
	uint64_t search_hint;           /* lowest block that may be free */
	uint32_t nlayouts;
	uint32_t reserved_l0;
	uint64_t dirty_top;             /* entries in the dirty free stack */
	uint64_t reserved_locked[4];    /* to 456 */
	/* who holds the lock (lock.c): written by the holder right after it
	 * takes it and cleared before it lets go; read without the lock (to
	 * name a holder that makes others wait), so atomics */
	_Atomic uint64_t lock_pid;      /* 0: nobody (or between two holders) */
	_Atomic uint64_t lock_tid;
	_Atomic uint64_t lock_start;    /* the holder process's start time */
	_Atomic uint64_t lock_since_ns; /* CLOCK_MONOTONIC_COARSE when it was taken */
	uint64_t reserved_locked2[3];   /* to 512 */

	/* atomics, readable without the lock (written under it) */
	_Atomic uint64_t committed;     /* data bytes backed by pages */
	_Atomic uint64_t used_bytes;    /* ALLOCATED + PUBLISHED + DOOMED */
	_Atomic uint64_t dirty_bytes;
	_Atomic uint64_t nobj[5];       /* by state; [FREE] = free slots */
	_Atomic uint64_t nholds;
	_Atomic uint64_t nclients;
	_Atomic uint64_t allocs;
	_Atomic uint64_t frees;
	_Atomic uint64_t ooms;
	_Atomic uint64_t repairs;
	_Atomic uint64_t zeroed_bytes;
	_Atomic uint64_t zero_busy_ns;
	_Atomic uint32_t grow_failed;
	uint32_t reserved_a0;
	_Atomic uint64_t dirty_extents; /* dirty-extent table entries in use */
	/* figures for monitoring (l1_arena_stats), counters since create */
	_Atomic uint64_t zero_waits;    /* allocations that waited for zeroing */
	_Atomic uint64_t zero_wait_ns;  /* the time they waited */
	_Atomic uint64_t gc_objects;    /* unpublished objects of dead writers reclaimed */
	_Atomic uint64_t gc_holds;      /* holds of dead processes dropped */
	_Atomic uint64_t gc_clients;    /* client slots of dead processes dropped */
	_Atomic uint64_t gc_requeued;   /* dirty extents a dead process was zeroing */
	_Atomic uint64_t grow_failures;     /* growths that failed (backing.c) */
	_Atomic uint64_t grow_returned;     /* bytes of pages they gave back */
	_Atomic uint64_t lock_timeouts;     /* lock waits that gave up (lock.c) */
	struct l1_queue lock_queue;     /* waiters who waited long for the lock (turn.c) */
	struct l1_queue mem_queue;      /* ... for room to allocate */
	/* zclaim.h: when an allocation last found only dirty memory
	 * (CLOCK_MONOTONIC ns; a torn or stale value only shifts for a while
	 * which thread zeroes a freed extent) */
	_Atomic uint64_t zero_pressure_ns;
	uint64_t reserved_atomic2[1];   /* to 768 */
	char grow_reason[L1_REASON_MAX];   /* under the lock */
	uint8_t reserved_tail[L1_HDR_SIZE - 768 - L1_REASON_MAX];
};

static_assert(sizeof(struct l1_hdr) == L1_HDR_SIZE, "header size");
static_assert(offsetof(struct l1_hdr, lock) == 320, "lock offset");
static_assert(offsetof(struct l1_hdr, pool_size) == 256, "pool_size offset");
static_assert(offsetof(struct l1_hdr, committed) == 512, "atomics offset");
static_assert(offsetof(struct l1_hdr, grow_reason) == 768, "reason offset");
static_assert(offsetof(struct l1_hdr, lock_pid) == 456, "lock holder offset");
static_assert(offsetof(struct l1_hdr, grow_failures) == 704, "growth counters offset");
static_assert(offsetof(struct l1_hdr, lock_queue) == 728, "queues offset");
static_assert(sizeof(struct l1_queue) == 12, "queue size");
static_assert(offsetof(struct l1_hdr, zero_pressure_ns) == 752, "zero pressure offset");
static_assert(sizeof(pthread_mutex_t) <= 64, "mutex fits its slot");

/* Record flags */
#define L1_REC_F_KEYED 1u               /* linked in the key index */
#define L1_REC_F_MARK 2u                /* duplicate check inside one free */

struct l1_rec {
	_Atomic uint32_t state;         /* enum l1_obj_state; written last */
	uint32_t gen;                   /* bumped on each allocation; never 0 when live */
	uint64_t offset;                /* from file start */
	uint64_t size;                  /* physical: data_size rounded to the block */
	uint32_t layout_id;
	uint32_t holds;                 /* sum of this record's hold entries */
	int32_t owner_pid;
	uint32_t uid;
	uint64_t owner_start;
	uint32_t gid;
	uint32_t mode;
	uint64_t ctime_ns;
	uint64_t publish_ns;
	int32_t zeroer_pid;             /* DIRTY: who zeroes it */
	uint32_t key_len;
	uint64_t zeroer_start;
	uint32_t key_next;              /* key bucket chain: slot+1 */
	uint32_t hold_head;             /* hold entries: index+1 */
	uint64_t key_hash;
	uint32_t flags;
	uint32_t owner_client;          /* client tag of the writer (liveness) */
	uint32_t zeroer_client;         /* DIRTY: client tag of its zeroer (| L1_ZEROER_WRITING);
					 * 0 = nobody */
	uint32_t reserved1;
	uint64_t data_size;             /* bytes asked for (layout bytes), <= size; the
					 * rest of the block is padding */
	char key[L1_KEY_MAX + 1];
};

static_assert(sizeof(struct l1_rec) == L1_REC_SIZE, "record size");
static_assert(offsetof(struct l1_rec, key) == 128, "key offset");
static_assert(offsetof(struct l1_rec, data_size) == 120, "data_size offset");

/* A slot is reused for another layout once no live object uses it (refs 0
 * and the table full); gen tells a process's cached id that it happened. */
struct l1_layout_slot {
	struct l1_layout layout;
	uint64_t bytes;
	uint64_t hash;
	uint32_t refs;                  /* live records of this layout (derived) */
	uint32_t gen;                   /* bumped each time the slot is (re)filled */
};

static_assert(sizeof(struct l1_layout) == 296, "layout size");
static_assert(sizeof(struct l1_layout_slot) == L1_LAYOUT_SLOT_SIZE, "layout slot");

struct l1_hold_ent {
	uint32_t slot;                  /* record held */
	uint32_t client;                /* client tag of the holder */
	uint32_t count;                 /* 0 = entry free */
	uint32_t next;                  /* index+1: record chain or free list */
};

static_assert(sizeof(struct l1_hold_ent) == L1_HOLD_SIZE, "hold entry");

/* A freed extent waiting to be zeroed, once its record has gone back to
 * the free stack (so the next allocation reuses a record still in cache).
 * Its blocks stay taken in the bitmap until the zeroing engine of the
 * client named here has cleared them; gc takes over the extents of a dead
 * zeroer, and of a live one whose lease ran out (see the liveness rule
 * above).  gen is bumped on each use and on each takeover: it is the
 * engine's cookie, so only the last taker can release the entry.  When the
 * table is full, the record itself stays DIRTY instead (the older way,
 * still valid; its gen plays the same part). */
struct l1_dirty_ent {
	uint64_t offset;                /* from file start; 0 = entry free */
	uint64_t size;
	uint32_t zeroer_client;         /* client tag (| L1_ZEROER_WRITING); 0: nobody (gc
					 * takes it over) */
	uint32_t reserved;
	int32_t zeroer_pid;             /* for display only */
	uint32_t gen;                   /* bumped on each use and takeover: the cookie */
};

static_assert(sizeof(struct l1_dirty_ent) == L1_DIRTY_SIZE, "dirty entry");

/* LIVE: an attached handle, listed and counted in nclients; ANON: a handle
 * attached with no_client (tools), which owns objects and zeroing like any
 * other but is neither listed nor counted and takes no holds. */
enum { L1_CLIENT_FREE = 0, L1_CLIENT_LIVE = 1, L1_CLIENT_ANON = 2 };

/* A client tag names one use of a client slot: slot | gen << L1_CLIENT_BITS
 * (gen never 0, so no tag is 0).  gen wraps after 2 million uses of one
 * slot; gc drops a dead client's holds and objects long before (a stale tag
 * taken for alive would keep memory, never free it early).  The top bit is
 * no part of a tag: in a zeroer_client it says that the zeroer has begun
 * writing the extent (L1_ZEROER_WRITING), which its engine, a thread of its
 * process zeroing the extent at free (zfree.c), or an allocating thread of
 * any process taking it under the lock in the zeroer's name (zhelp.c; it
 * releases the entry before the lock goes) sets with a compare-and-swap
 * before the first write (the one claim: whoever sets it
 * alone writes and releases) and gc's takeover refuses while that zeroer
 * lives: a write it issued may land at any time, even after a
 * stop, and must never land in bytes handed out again. */
#define L1_CLIENT_BITS 10u
#define L1_CLIENT_GEN_MAX ((1u << (31 - L1_CLIENT_BITS)) - 1)
#define L1_ZEROER_WRITING (1u << 31)
static_assert(L1_MAX_CLIENTS <= 1u << L1_CLIENT_BITS, "client slots fit a tag");

struct l1_client {
	int32_t pid;                    /* for display only */
	uint32_t state;                 /* L1_CLIENT_* */
	uint64_t start;                 /* for display only */
	uint64_t attach_ns;
	uint64_t pinned_bytes;
	uint32_t pin_status;            /* enum l1_pin_status */
	uint32_t holds;
	char pin_reason[L1_REASON_MAX];
	char zero_method[48];
	uint32_t gen;                   /* bumped each time the slot is taken */
	_Atomic uint32_t beat_ms;       /* its zeroing engine's last sign of life
					 * (CLOCK_BOOTTIME, ms, wrapping) */
	uint32_t uid;                   /* effective uid at attach, for display */
	char comm[16];                  /* command name at attach (PR_GET_NAME) */
	uint32_t reserved_c1;
	uint8_t reserved[L1_CLIENT_SIZE - 248];
};

static_assert(sizeof(struct l1_client) == L1_CLIENT_SIZE, "client size");
static_assert(offsetof(struct l1_client, gen) == 216, "client gen offset");
static_assert(offsetof(struct l1_client, uid) == 224, "client uid offset");

#endif
