/*
 * fuzz_pool.c - a libFuzzer target over the pool file: the input bytes are
 * the whole pool file (a memfd, opened by its /proc path).  Each run opens it
 * read-only and read-write; when open accepts it, the library is driven
 * through everything a client does to a pool it did not make: memcheck,
 * every lookup of what the records say exists (each object handed out must
 * lie inside the data region; its first and last bytes are read), allocate,
 * publish, hold, free, gc; then memcheck --repair, which must end clean, and
 * the same again on the repaired pool, which must stay clean.  A crash, an
 * out-of-bounds access (ASan, and SIGSEGV for the mapping), undefined
 * behaviour (UBSan), a leak or an abort() below is a finding.
 *
 * Two things are fixed up before the bytes are used, because they are not
 * format validation: the robust mutex bytes (a garbage futex word can block
 * a locker forever, which no opener can check), and a zero magic (open waits
 * two seconds for a creator that is still writing).
 *
 * Seeds: minimal valid pools (a few KiB: tiny tables, 64-byte blocks) are
 * formatted by hand here and filled through the library.  Run with
 * L1_FUZZ_MAKE_CORPUS=DIR to write them to DIR and exit (tests/fuzz/corpus
 * holds that output; tests/sh/test_fuzz.sh regenerates them and runs the
 * target for L1_FUZZ_SECONDS).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define MINI_MAX (64u << 10)

static int mfd = -1;
static char mpath[64];
static uint8_t lock_image[64];

static void die(const char *what)
{
	fprintf(stderr, "fuzz_pool: %s (%s)\n", what, l1_last_error());
	abort();
}

/* ---- seeds: minimal pools formatted by hand ----------------------------- */

struct mini {
	uint64_t block, nblocks, grow, max_objects, max_layouts, max_holds, max_clients;
	uint64_t committed;             /* 0 = all */
	uint32_t lazy, zero_on_free;
};

static uint64_t up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

/* Writes a formatted, empty pool with this geometry to fd; 0 or -1. */
static int mini_format(int fd, const struct mini *m)
{
	struct l1_hdr h;
	memset(&h, 0, sizeof h);
	h.major = L1_FMT_MAJOR;
	h.minor = L1_FMT_MINOR;
	h.hdr_size = L1_HDR_SIZE;
	h.rec_size = L1_REC_SIZE;
	h.block_size = m->block;
	h.hugepage_size = 4096;
	h.nblocks = m->nblocks;
	h.data_size = m->block * m->nblocks;
	h.grow_step = m->grow;
	h.max_objects = m->max_objects;
	h.max_layouts = m->max_layouts;
	h.nbuckets = 1;
	while (h.nbuckets < h.max_objects)
		h.nbuckets <<= 1;
	h.bitmap_words = (h.nblocks + 63) / 64;
	h.summary_words = (h.bitmap_words + 63) / 64;
	h.max_holds = m->max_holds;
	h.max_clients = m->max_clients;
	h.max_dirty = m->zero_on_free ? m->max_objects : 0;
	uint64_t at = L1_HDR_SIZE;
#define PLACE(field, bytes) do { h.field = at; at = up(at + (bytes), 8); } while (0)
	PLACE(records_off, h.max_objects * L1_REC_SIZE);
	PLACE(layouts_off, h.max_layouts * L1_LAYOUT_SLOT_SIZE);
	PLACE(buckets_off, h.nbuckets * 4);
	PLACE(bitmap_off, h.bitmap_words * 8);
	PLACE(summary_off, h.summary_words * 8);
	PLACE(holds_off, h.max_holds * L1_HOLD_SIZE);
	PLACE(slots_off, h.max_objects * 4);
	PLACE(clients_off, h.max_clients * L1_CLIENT_SIZE);
	PLACE(dirty_off, h.max_dirty * L1_DIRTY_SIZE);
	PLACE(dirty_stack_off, h.max_dirty * 4);
#undef PLACE
	h.data_off = up(at, 4096);
	h.file_size = h.data_off + h.data_size;
	h.lazy = m->lazy;
	h.zero_on_free = m->zero_on_free;
	h.backing = L1_BACKING_SHM;
	h.mode = 0600;
	h.pool_id = 0x1f1f1f1f00000000ull | (uint64_t)m->nblocks << 8 | m->max_objects;
	if (ftruncate(fd, 0) || ftruncate(fd, (off_t)h.file_size))
		return -1;
	uint8_t *base = mmap(NULL, h.file_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED)
		return -1;
	struct l1_hdr *ph = (struct l1_hdr *)(void *)base;
	memcpy(ph, &h, sizeof h);
	if (l1__lock_init(ph))
		return -1;
	uint32_t *slots = (uint32_t *)(void *)(base + h.slots_off);
	struct l1_hold_ent *holds = (struct l1_hold_ent *)(void *)(base + h.holds_off);
	for (uint64_t s = h.max_objects; s-- > 0;)
		slots[ph->slot_top++] = (uint32_t)s;
	for (uint64_t i = h.max_holds; i-- > 0;) {
		holds[i].next = (uint32_t)ph->hold_free;
		ph->hold_free = i + 1;
	}
	uint32_t *dstack = (uint32_t *)(void *)(base + h.dirty_stack_off);
	for (uint64_t i = h.max_dirty; i-- > 0;)
		dstack[ph->dirty_top++] = (uint32_t)i;
	atomic_store(&ph->nobj[L1_STATE_FREE], h.max_objects);
	atomic_store(&ph->committed, m->committed ? m->committed : h.data_size);
	__atomic_store_n(&ph->magic, L1_MAGIC, __ATOMIC_RELEASE);
	munmap(base, h.file_size);
	return 0;
}

static void write_seed(const char *dir, const char *name, int fd)
{
	char path[512];
	static uint8_t buf[MINI_MAX];
	off_t n = lseek(fd, 0, SEEK_END);
	if (n <= 0 || n > (off_t)sizeof buf || pread(fd, buf, (size_t)n, 0) != n)
		die("seed larger than expected");
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, (size_t)n, f) != (size_t)n || fclose(f))
		die("cannot write a seed");
}

static struct l1_arena *seed_open(void)
{
	struct l1_open_opts o;
	struct l1_arena *a;
	l1_open_opts_init(&o);
	o.pin = L1_PIN_OFF;
	o.zero_method = L1_ZERO_MEMSET;
	if (l1_arena_open(mpath, &o, &a))
		die("a seed pool does not open");
	return a;
}

static void make_corpus(const char *dir)
{
	static const struct mini geo[] = {
		/* block, nblocks, grow, objects, layouts, holds, clients, committed, lazy, zero */
		{ 64, 64, 4096, 8, 2, 8, 2, 0, 0, 1 },
		{ 64, 128, 2048, 16, 4, 16, 4, 2048, 1, 1 },
		{ 256, 32, 8192, 8, 2, 4, 2, 0, 0, 0 },
	};
	char name[64];
	struct l1_obj o[6], h;
	struct l1_layout l;
	for (unsigned g = 0; g < sizeof geo / sizeof geo[0]; g++) {
		if (mini_format(mfd, &geo[g]))
			die("cannot format a seed pool");
		struct l1_arena *a = seed_open();
		char rep[4096];
		if (l1_arena_memcheck(a, 0, rep, sizeof rep))
			die(rep);
		snprintf(name, sizeof name, "empty-%u", g);
		write_seed(dir, name, mfd);
		/* objects in every state: allocated, published with and without a
		 * key, held, doomed (freed while held), dirty (freed, not zeroed) */
		if (l1_layout_parse("[2,4]:fp16;[3]:int32", &l) || l1_alloc(a, &l, 3, o) ||
		    l1_alloc_bytes(a, 100, 3, o + 3))
			die("cannot fill a seed pool");
		for (int i = 0; i < 6; i++)
			memset(o[i].ptr, 0x11 * (i + 1), o[i].size);
		if (l1_publish(a, o[0].id, "seed/key0") || l1_publish(a, o[1].id, "seed/key1") ||
		    l1_publish(a, o[3].id, NULL) || l1_hold_key(a, "seed/key1", &h) ||
		    l1_hold(a, o[0].id, &h) || l1_free(a, &o[1], 1))
			die("cannot fill a seed pool");
		l1_arena_flush(a, 1000);
		if (l1_arena_memcheck(a, 0, rep, sizeof rep))
			die(rep);
		snprintf(name, sizeof name, "objects-%u", g);
		write_seed(dir, name, mfd);
		/* the last object a DIRTY record, the one before it an entry of
		 * the dirty-extent table (where a pool with zero-on-free has
		 * one), both with their zeroer gone */
		struct l1_rec *r = &a->recs[o[5].id & 0xffffffff];
		struct l1_rec *t = &a->recs[o[4].id & 0xffffffff];
		struct l1_zero_extent x;
		if (l1__lock(a))
			die("lock");
		r->zeroer_pid = 0;
		r->zeroer_client = 0;
		l1__rec_set_state(a, r, L1_STATE_DIRTY);
		if (l1__dirty_add(a, t->offset, t->size, &x) == 0) {
			a->dirty[x.slot & ~L1_ZX_TABLE].zeroer_client = 0;
			a->dirty[x.slot & ~L1_ZX_TABLE].zeroer_pid = 0;
			l1__rec_set_state(a, t, L1_STATE_FREE);
			l1__slot_push(a, (uint32_t)(o[4].id & 0xffffffff));
		}
		l1__unlock(a);
		if (l1_arena_memcheck(a, 0, rep, sizeof rep))
			die(rep);
		snprintf(name, sizeof name, "dirty-%u", g);
		write_seed(dir, name, mfd);
		l1_arena_close(a);
	}
}

/* ---- the target --------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("L1ARENA_ZERO", "memset", 1);
	mfd = memfd_create("l1fuzz", 0);
	if (mfd < 0)
		die("memfd_create");
	snprintf(mpath, sizeof mpath, "/proc/%d/fd/%d", (int)getpid(), mfd);
	struct l1_hdr h;
	if (l1__lock_init(&h))
		die("mutex");
	memcpy(lock_image, h.lock, sizeof lock_image);
	const char *dir = getenv("L1_FUZZ_MAKE_CORPUS");
	if (dir && *dir) {
		make_corpus(dir);
		exit(0);
	}
	return 0;
}

struct span {
	uint8_t *lo, *hi;
};

/* An object handed out must lie in the data region of this mapping; its
 * first and last bytes are read so a bad pointer faults here. */
static void check_obj(const struct span *d, const struct l1_obj *o)
{
	uint8_t *p = o->ptr;
	if (!o->size || p < d->lo || p > d->hi || o->size > (uint64_t)(d->hi - p))
		die("object handed out outside the data region");
	volatile uint8_t sink = p[0];
	sink ^= p[o->size - 1];
	(void)sink;
}

static void drive(struct l1_arena *a, const struct span *d, int before_repair)
{
	static struct l1_obj_info info[64];
	struct l1_obj o, mine[8];
	struct l1_usage u;
	struct l1_layout l;
	uint64_t cur = 0;
	int n, k = 0;
	while ((n = l1_obj_list(a, &cur, info, 64)) > 0 && k++ < 64) {
		for (int i = 0; i < n; i++) {
			uint64_t id = info[i].obj.id;
			if (l1_get(a, id, &o) == 0)
				check_obj(d, &o);
			if (l1_hold(a, id, &o) == 0) {
				check_obj(d, &o);
				if (l1_release(a, id))
					die("release of a hold just taken");
			}
			if (info[i].key[0] && l1_lookup(a, info[i].key, &o) == 0)
				check_obj(d, &o);
			if (info[i].key[0] && l1_hold_key(a, info[i].key, &o) == 0) {
				check_obj(d, &o);
				l1_release(a, o.id);
			}
			l1_arena_layout(a, info[i].obj.layout_id, &l);
			l1_obj_info(a, id, &info[i]);
		}
	}
	l1_arena_usage(a, &u);
	/* allocate waits (bounded) for dirty bytes to drain: a garbage counter
	 * before the repair would make that wait the whole run */
	if (!before_repair || u.dirty_bytes == 0) {
		uint32_t want = 1 + (uint32_t)(u.total_bytes & 3);
		if (l1_alloc_bytes(a, 64, want, mine) == 0) {
			for (uint32_t i = 0; i < want; i++) {
				check_obj(d, &mine[i]);
				memset(mine[i].ptr, 0xa5, mine[i].size);
			}
			int r = l1_publish(a, mine[0].id, "fuzz/new");
			if (!before_repair && r && r != -EEXIST)
				die("publish of a new object failed on a repaired pool");
			if (l1_hold_key(a, "fuzz/new", &o) == 0)
				l1_release(a, o.id);
			if (l1_free(a, mine, want))
				die("free of objects just allocated");
		}
	}
	l1_arena_gc(a, NULL);
	l1_arena_flush(a, before_repair ? 0 : 2000);
	struct l1_vm_space v;
	l1_get_vm_space(a, &v);
	struct l1_client_info ci[4];
	l1_arena_clients(a, ci, 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char rep[1 << 16];
	static uint8_t buf[1 << 20];
	struct l1_open_opts o;
	struct l1_arena *a;
	if (size > sizeof buf)
		return 0;
	memcpy(buf, data, size);
	if (size >= 320 + sizeof lock_image)
		memcpy(buf + 320, lock_image, sizeof lock_image);
	if (size >= 8 && !((struct l1_hdr *)(void *)buf)->magic)
		return 0;
	if (ftruncate(mfd, 0) || pwrite(mfd, buf, size, 0) != (ssize_t)size)
		die("memfd");
	l1_open_opts_init(&o);
	o.pin = L1_PIN_OFF;
	o.zero_method = L1_ZERO_MEMSET;
	o.readonly = 1;
	if (l1_arena_open(mpath, &o, &a) == 0) {
		struct l1_usage u;
		uint64_t cur = 0;
		struct l1_obj_info info[8];
		l1_arena_usage(a, &u);
		l1_obj_list(a, &cur, info, 8);
		l1_arena_memcheck(a, 0, rep, sizeof rep);
		l1_arena_close(a);
	} else if (!*l1_last_error()) {
		die("open refused a file without a sentence");
	}
	o.readonly = 0;
	if (l1_arena_open(mpath, &o, &a) != 0) {
		if (!*l1_last_error())
			die("open refused a file without a sentence");
		return 0;
	}
	struct l1_vm_space v;
	l1_get_vm_space(a, &v);
	struct span d = { (uint8_t *)v.base + v.data_offset, (uint8_t *)v.base + v.size };
	l1_arena_memcheck(a, 0, rep, sizeof rep);
	drive(a, &d, 1);
	int left = l1_arena_memcheck(a, 1, rep, sizeof rep);
	if (left != 0) {
		fprintf(stderr, "%s", rep);
		l1_arena_memcheck(a, 0, rep, sizeof rep);
		fprintf(stderr, "left:\n%s", rep);
		die("problems left after memcheck --repair");
	}
	if (l1_arena_memcheck(a, 0, rep, sizeof rep) != 0) {
		fprintf(stderr, "%s", rep);
		die("memcheck not clean right after a repair");
	}
	drive(a, &d, 0);
	if (l1_arena_memcheck(a, 0, rep, sizeof rep) != 0) {
		fprintf(stderr, "%s", rep);
		die("a repaired pool became inconsistent under ordinary calls");
	}
	l1_arena_close(a);
	return 0;
}
