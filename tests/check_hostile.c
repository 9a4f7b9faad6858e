/*
 * check_hostile.c - pool files that lie.  A real pool is made in /dev/shm
 * (hugetlbfs has no write(), and a plain file can be patched through a
 * shared mapping), then damaged one way per test: truncated or extended,
 * wrong magic, version, sizes, regions that overlap or leave the file,
 * counters out of range (open must refuse each with a clear error, leaking
 * nothing); and, past a valid header, a bitmap that disagrees with the
 * records, records that point outside the data region or overlap, unknown
 * states, loops and wild links in the key index and the hold chains, a
 * corrupt free-slot stack (open accepts the file; memcheck names the damage,
 * every API call on the damaged pool returns a value and never hands out a
 * pointer outside the data region, and memcheck --repair, through the library
 * and through `l1ctl memcheck --repair`, leaves a clean pool whose intact
 * published objects keep their bytes).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

#define MiB (1ull << 20)
#define NOBJ 8
#define NPUB 4
#define OBJ_BYTES 8192

/* A pool file in /dev/shm mapped by the test, plus what was put in it. */
struct img {
	char path[256];
	int fd;
	uint8_t *base;
	uint64_t size;
	struct l1_hdr *h;
	struct l1_rec *recs;
	uint64_t ids[NOBJ];             /* slots 0..NOBJ-1; the first NPUB published */
};

static const char *shm_dir(void)
{
	return l1t_shm_dir();
}

static void img_map(struct img *m)
{
	struct stat st;
	m->fd = open(m->path, O_RDWR);
	ck_assert_int_ge(m->fd, 0);
	ck_assert_int_eq(fstat(m->fd, &st), 0);
	m->size = (uint64_t)st.st_size;
	m->base = mmap(NULL, m->size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
	ck_assert(m->base != MAP_FAILED);
	m->h = (struct l1_hdr *)(void *)m->base;
	m->recs = (struct l1_rec *)(void *)(m->base + m->h->records_off);
}

static void img_unmap(struct img *m)
{
	if (m->base)
		munmap(m->base, m->size);
	if (m->fd >= 0)
		close(m->fd);
	m->base = NULL;
	m->fd = -1;
}

/* A 2 MiB pool with NOBJ objects of OBJ_BYTES, NPUB of them published as
 * key0.. and filled with pattern i; the rest unpublished, owned by us. */
static void img_make(struct img *m, const char *name)
{
	static unsigned seq;
	struct l1_config c;
	struct l1_arena *a;
	struct l1_obj o[NOBJ];
	memset(m, 0, sizeof *m);
	m->fd = -1;
	snprintf(m->path, sizeof m->path, "%s/%s-%d-%u", shm_dir(), name, (int)getpid(), seq++);
	unlink(m->path);
	l1_config_init(&c);
	c.path = m->path;
	c.size_bytes = 2 * MiB;
	c.grow_step_bytes = 2 * MiB;
	c.pin = L1_PIN_OFF;
	c.allow_shm = 1;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	ck_assert_str_eq(l1_arena_path(a), m->path);
	ck_assert_int_eq(l1_alloc_bytes(a, OBJ_BYTES, NOBJ, o), 0);
	for (int i = 0; i < NOBJ; i++) {
		m->ids[i] = o[i].id;
		ck_assert_uint_eq(o[i].id & 0xffffffff, (uint64_t)i);
		l1t_fill(o[i].ptr, o[i].size, (uint64_t)i);
	}
	for (int i = 0; i < NPUB; i++) {
		char key[16];
		snprintf(key, sizeof key, "key%d", i);
		ck_assert_int_eq(l1_publish(a, o[i].id, key), 0);
	}
	l1t_memcheck_clean(a);
	l1_arena_close(a);
	img_map(m);
}

static void img_drop(struct img *m)
{
	img_unmap(m);
	unlink(m->path);
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Opening must fail with err and a sentence that names the file, and leave
 * no descriptor or mapping behind; destroy without force must refuse too. */
static void expect_refused_as(struct img *m, int err, const char *words, const char *what)
{
	struct l1_arena *a = (struct l1_arena *)(uintptr_t)1;
	int fds = count_fds();
	int r = l1_arena_open(m->path, NULL, &a);
	ck_assert_msg(r == err, "open of a pool with %s: %d (%s), expected %d; %s", what, r,
		      l1_strerror(r), err, l1_last_error());
	ck_assert_ptr_null(a);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), m->path));
	if (words)
		ck_assert_msg(strstr(l1_last_error(), words), "'%s' lacks '%s'", l1_last_error(),
			      words);
	ck_assert_int_eq(count_fds(), fds);
	struct l1_open_opts o;
	l1_open_opts_init(&o);
	o.readonly = 1;
	ck_assert_int_eq(l1_arena_open(m->path, &o, &a), err);
	ck_assert_int_eq(l1_arena_destroy(m->path, 0), err);
	ck_assert_int_eq(access(m->path, F_OK), 0);
	ck_assert_int_eq(count_fds(), fds);
}

#define expect_refused(m, err, words) expect_refused_as((m), (err), (words), "damage")

/* ---- headers that open must refuse -------------------------------------- */

START_TEST(short_files)
{
	struct img m;
	img_make(&m, "short");
	static const uint64_t sizes[] = { 0, 1, 100, 4095, 4096, 8192, 2 * MiB };
	img_unmap(&m);
	for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		ck_assert_int_eq(truncate(m.path, (off_t)sizes[i]), 0);
		expect_refused(&m, -EBADMSG, NULL);
	}
	img_drop(&m);
}
END_TEST

START_TEST(truncated_and_extended)
{
	struct img m;
	img_make(&m, "trunc");
	uint64_t full = m.size;
	img_unmap(&m);
	ck_assert_int_eq(truncate(m.path, (off_t)(full - 4096)), 0);
	expect_refused(&m, -EBADMSG, "truncated");
	ck_assert_int_eq(truncate(m.path, (off_t)(full + 2 * MiB)), 0);
	expect_refused(&m, -EBADMSG, "truncated");
	ck_assert_int_eq(truncate(m.path, (off_t)full), 0);
	struct l1_arena *a;
	ck_assert_int_eq(l1_arena_open(m.path, NULL, &a), 0);   /* whole again */
	l1t_memcheck_clean(a);
	l1_arena_close(a);
	img_drop(&m);
}
END_TEST

START_TEST(magic_and_version)
{
	struct img m;
	struct l1_arena *a;
	img_make(&m, "magic");
	m.h->magic ^= 0x100;
	expect_refused(&m, -EBADMSG, "magic");
	m.h->magic = 0;                 /* "being created": open waits, then refuses */
	expect_refused(&m, -EBADMSG, "magic");
	m.h->magic = L1_MAGIC;
	m.h->major = L1_FMT_MAJOR + 1;
	expect_refused(&m, -EPROTO, "version");
	m.h->major = 0;
	expect_refused(&m, -EPROTO, "version");
	m.h->major = L1_FMT_MAJOR;
	m.h->minor = L1_FMT_MINOR + 7;  /* a newer minor is compatible */
	ck_assert_int_eq(l1_arena_open(m.path, NULL, &a), 0);
	l1t_memcheck_clean(a);
	l1_arena_close(a);
	m.h->minor = L1_FMT_MINOR;
	m.h->hdr_size = 8192;
	expect_refused(&m, -EBADMSG, "size");
	m.h->hdr_size = L1_HDR_SIZE;
	m.h->rec_size = 128;
	expect_refused(&m, -EBADMSG, "size");
	m.h->rec_size = L1_REC_SIZE;
	m.h->file_size += 4096;
	expect_refused(&m, -EBADMSG, "truncated");
	m.h->file_size -= 8192;
	expect_refused(&m, -EBADMSG, "truncated");
	img_drop(&m);
}
END_TEST

/* One field of the header set to a bad value, refused, then restored. */
#define REFUSE_FIELD(m, field, value, err) do {                                 \
		__typeof__((m)->h->field) saved_ = (m)->h->field;                    \
		(m)->h->field = (value);                                             \
		expect_refused_as((m), (err), NULL, #field " = " #value);            \
		(m)->h->field = saved_;                                              \
	} while (0)

START_TEST(geometry)
{
	struct img m;
	struct l1_arena *a;
	img_make(&m, "geom");
	struct l1_hdr *h = m.h;
	REFUSE_FIELD(&m, block_size, 0, -EBADMSG);
	REFUSE_FIELD(&m, block_size, 4095, -EBADMSG);
	REFUSE_FIELD(&m, block_size, 32, -EBADMSG);
	REFUSE_FIELD(&m, block_size, 1ull << 63, -EBADMSG);
	REFUSE_FIELD(&m, hugepage_size, 0, -EBADMSG);
	REFUSE_FIELD(&m, hugepage_size, 3 << 20, -EBADMSG);
	REFUSE_FIELD(&m, hugepage_size, 1ull << 40, -EBADMSG);
	REFUSE_FIELD(&m, data_off, h->data_off + 4096, -EBADMSG);
	REFUSE_FIELD(&m, data_off, h->file_size + h->hugepage_size, -EBADMSG);
	REFUSE_FIELD(&m, data_off, 0, -EBADMSG);
	REFUSE_FIELD(&m, data_off, UINT64_MAX - 4095, -EBADMSG);
	REFUSE_FIELD(&m, data_size, h->data_size + 4096, -EBADMSG);
	REFUSE_FIELD(&m, data_size, UINT64_MAX, -EBADMSG);
	REFUSE_FIELD(&m, data_size, 0, -EBADMSG);
	REFUSE_FIELD(&m, nblocks, h->nblocks + 1, -EBADMSG);
	REFUSE_FIELD(&m, nblocks, 0, -EBADMSG);
	REFUSE_FIELD(&m, grow_step, 0, -EBADMSG);
	REFUSE_FIELD(&m, grow_step, h->block_size + 1, -EBADMSG);
	REFUSE_FIELD(&m, grow_step, h->data_size * 2, -EBADMSG);
	REFUSE_FIELD(&m, grow_step, UINT64_MAX & ~(h->block_size - 1), -EBADMSG);
	REFUSE_FIELD(&m, bitmap_words, h->bitmap_words + 1, -EBADMSG);
	REFUSE_FIELD(&m, summary_words, h->summary_words + 1, -EBADMSG);
	REFUSE_FIELD(&m, summary_words, 0, -EBADMSG);
	REFUSE_FIELD(&m, max_objects, 0, -EBADMSG);
	REFUSE_FIELD(&m, max_objects, UINT32_MAX, -EBADMSG);
	REFUSE_FIELD(&m, max_objects, 1ull << 62, -EBADMSG);
	REFUSE_FIELD(&m, max_objects, h->max_objects * 4, -EBADMSG);
	REFUSE_FIELD(&m, nbuckets, 3, -EBADMSG);
	REFUSE_FIELD(&m, nbuckets, 0, -EBADMSG);
	REFUSE_FIELD(&m, nbuckets, 1ull << 62, -EBADMSG);   /* x4 bytes wraps to 0 */
	REFUSE_FIELD(&m, nbuckets, 1ull << 63, -EBADMSG);
	REFUSE_FIELD(&m, nbuckets, 1ull << 40, -EBADMSG);
	REFUSE_FIELD(&m, max_layouts, L1_MAX_LAYOUTS + 1, -EBADMSG);
	REFUSE_FIELD(&m, max_clients, L1_MAX_CLIENTS + 1, -EBADMSG);
	REFUSE_FIELD(&m, max_holds, 0, -EBADMSG);
	REFUSE_FIELD(&m, max_holds, 1ull << 62, -EBADMSG);
	REFUSE_FIELD(&m, max_holds, 1ull << 30, -EBADMSG);
	ck_assert_int_eq(l1_arena_open(m.path, NULL, &a), 0);   /* all restored */
	l1t_memcheck_clean(a);
	l1_arena_close(a);
	img_drop(&m);
}
END_TEST

START_TEST(regions)
{
	struct img m;
	struct l1_arena *a;
	img_make(&m, "regions");
	struct l1_hdr *h = m.h;
	/* overlapping the header, each other, the data; outside the file;
	 * misaligned; offsets that wrap when a length is added */
	REFUSE_FIELD(&m, records_off, 0, -EBADMSG);
	REFUSE_FIELD(&m, records_off, 8, -EBADMSG);
	REFUSE_FIELD(&m, records_off, h->records_off + 4, -EBADMSG);
	REFUSE_FIELD(&m, layouts_off, h->records_off, -EBADMSG);
	REFUSE_FIELD(&m, layouts_off, h->records_off + 4096, -EBADMSG);
	REFUSE_FIELD(&m, buckets_off, h->layouts_off + 8, -EBADMSG);
	REFUSE_FIELD(&m, bitmap_off, h->buckets_off, -EBADMSG);
	REFUSE_FIELD(&m, summary_off, h->bitmap_off, -EBADMSG);
	REFUSE_FIELD(&m, holds_off, h->data_off, -EBADMSG);
	REFUSE_FIELD(&m, slots_off, h->file_size, -EBADMSG);
	REFUSE_FIELD(&m, clients_off, h->data_off - 8, -EBADMSG);
	REFUSE_FIELD(&m, clients_off, UINT64_MAX - 7, -EBADMSG);
	REFUSE_FIELD(&m, clients_off, h->file_size + (1ull << 40), -EBADMSG);
	REFUSE_FIELD(&m, records_off, UINT64_MAX - 255, -EBADMSG);
	REFUSE_FIELD(&m, bitmap_off, h->clients_off, -EBADMSG);
	/* counters that would index outside their tables */
	atomic_store(&h->committed, h->data_size + 4096);
	expect_refused(&m, -EBADMSG, "out of range");
	atomic_store(&h->committed, h->data_size);
	REFUSE_FIELD(&m, slot_top, h->max_objects + 1, -EBADMSG);
	REFUSE_FIELD(&m, hold_free, h->max_holds + 1, -EBADMSG);
	REFUSE_FIELD(&m, nlayouts, (uint32_t)h->max_layouts + 1, -EBADMSG);
	ck_assert_int_eq(l1_arena_open(m.path, NULL, &a), 0);
	l1t_memcheck_clean(a);
	l1_arena_close(a);
	img_drop(&m);
}
END_TEST

/* ---- damage past the header: memcheck finds it, repair mends it --------- */

static int in_data(const struct img *m, const struct l1_obj *o)
{
	return o->offset >= m->h->data_off && o->size && o->offset <= m->h->file_size &&
	       o->size <= m->h->file_size - o->offset;
}

/* Every call on a damaged pool: a value, never a crash, never a pointer
 * outside the data region.  Objects handed out are written (they must be
 * ours to write) and freed again. */
static void api_battery(struct img *m, struct l1_arena *a)
{
	struct l1_obj o, objs[4];
	struct l1_obj_info info[16];
	struct l1_usage u;
	struct l1_layout l;
	char key[16];
	for (int i = 0; i < NOBJ + 2; i++) {
		uint64_t id = i < NOBJ ? m->ids[i] : ((uint64_t)1 << 32) | (uint64_t)(600 + i);
		if (l1_get(a, id, &o) == 0)
			ck_assert_msg(in_data(m, &o), "get %d: extent outside the data", i);
		if (l1_hold(a, id, &o) == 0) {
			ck_assert_msg(in_data(m, &o), "hold %d: extent outside the data", i);
			ck_assert_int_eq(l1_release(a, id), 0);
		}
		l1_obj_info(a, id, info);
		snprintf(key, sizeof key, "key%d", i);
		if (l1_lookup(a, key, &o) == 0)
			ck_assert_msg(in_data(m, &o), "lookup %s: extent outside the data", key);
		if (l1_hold_key(a, key, &o) == 0) {
			ck_assert_msg(in_data(m, &o), "hold %s: extent outside the data", key);
			ck_assert_int_eq(l1_release(a, o.id), 0);
		}
		if (l1_arena_layout(a, i, &l) == 0)
			ck_assert_int_eq(l1_layout_bytes(&l, NULL), 0);
	}
	uint64_t cur = 0;
	while (l1_obj_list(a, &cur, info, 16) > 0)
		;
	ck_assert_int_eq(l1_arena_usage(a, &u), 0);
	l1_arena_gc(a, NULL);
	l1_arena_flush(a, 2000);
	/* new objects: inside the data region, and writable */
	int r = l1_alloc_bytes(a, 4096, 4, objs);
	if (r == 0) {
		for (int i = 0; i < 4; i++) {
			ck_assert_msg(in_data(m, &objs[i]), "alloc: extent outside the data");
			memset(objs[i].ptr, 0x5a, objs[i].size);
		}
		ck_assert_int_eq(l1_publish(a, objs[0].id, "fresh-key"), 0);
		ck_assert_int_eq(l1_free(a, objs, 4), 0);
	}
	/* free and publish what the file says exists */
	l1_publish(a, m->ids[NPUB], "late-key");
	l1_free_ids(a, &m->ids[NOBJ - 1], 1);
	l1_arena_flush(a, 2000);
}

/* The published objects whose records were not damaged keep their bytes. */
static void expect_intact(struct l1_arena *a, unsigned skip_mask)
{
	for (int i = 0; i < NPUB; i++) {
		char key[16];
		struct l1_obj o;
		if (skip_mask & (1u << i))
			continue;
		snprintf(key, sizeof key, "key%d", i);
		ck_assert_msg(l1_hold_key(a, key, &o) == 0, "%s lost: %s", key, l1_last_error());
		ck_assert_uint_eq(o.id, ((uint64_t)1 << 32) | (uint64_t)i);
		ck_assert_msg(l1t_check(o.ptr, o.size, (uint64_t)i), "%s: bytes changed", key);
		ck_assert_int_eq(l1_release(a, o.id), 0);
	}
}

/* Fills the rest of the pool and checks nothing handed out overlaps what
 * survived (the bitmap was right after the repair), then gives it back. */
static void fill_pool(struct img *m, struct l1_arena *a, unsigned skip_mask)
{
	static struct l1_obj o[512];
	uint32_t n = 0;
	while (n < 512 && l1_alloc_bytes(a, 4096, 1, &o[n]) == 0) {
		ck_assert(in_data(m, &o[n]));
		memset(o[n].ptr, 0xee, o[n].size);
		n++;
	}
	ck_assert_uint_gt(n, 0);
	expect_intact(a, skip_mask);
	ck_assert_int_eq(l1_free(a, o, n), 0);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
}

/* Opens the damaged pool (the header is fine, so open must accept it),
 * expects memcheck to find the damage (naming `words`), runs every call,
 * repairs, and checks the pool is clean and serves.  skip_mask: published
 * objects whose records the damage touched (their fate is the repair's). */
static void damaged_then_repaired(struct img *m, const char *words, unsigned skip_mask)
{
	struct l1_arena *a;
	char rep[8192];
	ck_assert_int_eq(l1_arena_open(m->path, NULL, &a), 0);
	int n = l1_arena_memcheck(a, 0, rep, sizeof rep);
	ck_assert_msg(n > 0, "memcheck missed the damage ('%s')", words);
	if (words)
		ck_assert_msg(strstr(rep, words), "memcheck report lacks '%s':\n%.1500s", words, rep);
	api_battery(m, a);
	n = l1_arena_memcheck(a, 1, rep, sizeof rep);
	ck_assert_msg(n == 0, "%d problem(s) left after repair:\n%.1500s", n, rep);
	l1t_memcheck_clean(a);
	expect_intact(a, skip_mask);
	fill_pool(m, a, skip_mask);
	l1t_memcheck_clean(a);
	l1_arena_close(a);
}

static uint64_t blk_of(const struct img *m, uint32_t slot)
{
	return (m->recs[slot].offset - m->h->data_off) / m->h->block_size;
}

static uint64_t *bitmap_of(struct img *m)
{
	return (uint64_t *)(void *)(m->base + m->h->bitmap_off);
}

static uint32_t *buckets_of(struct img *m)
{
	return (uint32_t *)(void *)(m->base + m->h->buckets_off);
}

START_TEST(bitmap_disagrees)
{
	struct img m;
	img_make(&m, "bm");
	uint64_t *bm = bitmap_of(&m);
	bm[m.h->bitmap_words - 1] |= 0xf0ull;               /* leaked bits */
	uint64_t b = blk_of(&m, 1);
	bm[b >> 6] &= ~(3ull << (b & 63));                   /* published key1: lost bits */
	damaged_then_repaired(&m, "leak", 0);
	img_drop(&m);
}
END_TEST

START_TEST(bitmap_all_free_or_all_taken)
{
	struct img m;
	img_make(&m, "bm0");
	memset(bitmap_of(&m), 0, m.h->bitmap_words * 8);     /* everything lost */
	damaged_then_repaired(&m, "marked free", 0);
	memset(bitmap_of(&m), 0xff, m.h->bitmap_words * 8);  /* everything taken */
	damaged_then_repaired(&m, "leak", 0);
	uint64_t *sum = (uint64_t *)(void *)(m.base + m.h->summary_off);
	sum[0] = ~0ull;                                      /* summary says full */
	damaged_then_repaired(&m, "summary", 0);
	img_drop(&m);
}
END_TEST

START_TEST(records_outside_data)
{
	struct img m;
	img_make(&m, "recout");
	struct l1_hdr *h = m.h;
	/* published key1 into the metadata, key2 past the end of the file,
	 * unpublished slot 5 with an offset that wraps, slot 6 misaligned */
	m.recs[1].offset = h->records_off;
	m.recs[2].offset = h->file_size + 4 * MiB;
	m.recs[5].offset = UINT64_MAX - 4095;
	m.recs[6].offset += 100;
	damaged_then_repaired(&m, "outside", 0x6);
	img_drop(&m);
}
END_TEST

START_TEST(records_bad_sizes)
{
	struct img m;
	img_make(&m, "recsize");
	m.recs[1].size = 0;
	m.recs[2].size = UINT64_MAX - 4095;                   /* offset + size wraps */
	m.recs[5].size = m.h->data_size * 2;
	m.recs[6].size = 4096 + 7;
	damaged_then_repaired(&m, "outside", 0x6);
	img_drop(&m);
}
END_TEST

START_TEST(records_dirty_outside)
{
	struct img m;
	img_make(&m, "recdirty");
	/* a dirty extent whose zeroer is gone, pointing at the metadata: gc
	 * must not zero it (that would wipe the records) */
	m.recs[5].offset = m.h->records_off;
	m.recs[5].zeroer_pid = 0;
	m.recs[5].zeroer_client = 0;
	atomic_store(&m.recs[5].state, L1_STATE_DIRTY);
	m.recs[6].offset = m.h->file_size + 8 * MiB;
	m.recs[6].zeroer_pid = 0;
	m.recs[6].zeroer_client = 0;
	atomic_store(&m.recs[6].state, L1_STATE_DIRTY);
	damaged_then_repaired(&m, "outside", 0);
	img_drop(&m);
}
END_TEST

START_TEST(dirty_table_lies)
{
	struct img m;
	img_make(&m, "dirtytab");
	struct l1_dirty_ent *e = (struct l1_dirty_ent *)(void *)(m.base + m.h->dirty_off);
	uint32_t *stack = (uint32_t *)(void *)(m.base + m.h->dirty_stack_off);
	ck_assert_uint_gt(m.h->max_dirty, 2);
	/* dirty extents whose zeroer is gone: one on the records (zeroing it
	 * would wipe them), one on published key2's bytes (gc must leave it:
	 * the record wins), the counter and the free stack wrong */
	e[0] = (struct l1_dirty_ent){ m.h->records_off, 4096, 0, 0, 0, 1 };
	e[1] = (struct l1_dirty_ent){ m.recs[2].offset, m.recs[2].size, 0, 0, 0, 1 };
	atomic_store(&m.h->dirty_extents, 0);
	stack[m.h->dirty_top - 1] = 1;
	damaged_then_repaired(&m, "dirty extent", 0);
	img_drop(&m);
}
END_TEST

START_TEST(records_overlap_and_states)
{
	struct img m;
	img_make(&m, "recov");
	m.recs[3].offset = m.recs[2].offset;                  /* key3 on top of key2 */
	atomic_store(&m.recs[5].state, 9);                    /* unknown state */
	atomic_store(&m.recs[100].state, L1_STATE_PUBLISHED); /* a live record out of nowhere */
	m.recs[100].gen = 1;
	m.recs[100].offset = m.recs[0].offset;
	m.recs[100].size = 4096;
	damaged_then_repaired(&m, "overlaps", 0xc);   /* one of key2, key3 */
	img_drop(&m);
}
END_TEST

START_TEST(key_index_loops)
{
	struct img m;
	img_make(&m, "keyloop");
	uint32_t *bk = buckets_of(&m);
	uint64_t mask = m.h->nbuckets - 1;
	/* key0's record points at itself; key1 -> key2 -> key1 */
	m.recs[0].key_next = 0 + 1;
	m.recs[1].key_next = 2 + 1;
	m.recs[2].key_next = 1 + 1;
	bk[m.recs[1].key_hash & mask] = 1 + 1;
	bk[m.recs[2].key_hash & mask] = 2 + 1;
	/* every other bucket leads into the loops too */
	for (uint64_t b = 0; b < m.h->nbuckets; b++)
		if (!bk[b])
			bk[b] = (uint32_t)(b % 3) + 1;
	damaged_then_repaired(&m, "loops", 0);
	img_drop(&m);
}
END_TEST

START_TEST(key_index_wild_links)
{
	struct img m;
	img_make(&m, "keywild");
	uint32_t *bk = buckets_of(&m);
	for (uint64_t b = 0; b < m.h->nbuckets; b++)
		bk[b] = (b & 1) ? UINT32_MAX : (uint32_t)m.h->max_objects + 1;
	m.recs[0].key_next = UINT32_MAX;
	m.recs[3].key_hash ^= 1;
	damaged_then_repaired(&m, "key", 0);
	img_drop(&m);
}
END_TEST

START_TEST(hold_chains)
{
	struct img m;
	img_make(&m, "holds");
	struct l1_hold_ent *he = (struct l1_hold_ent *)(void *)(m.base + m.h->holds_off);
	/* a hold loop on key0, a wild hold link on key1, entries naming
	 * records and clients that do not exist, and a wild free list */
	he[0] = (struct l1_hold_ent){ 0, 0, 1, 1 };
	m.recs[0].hold_head = 1;
	m.recs[0].holds = 1;
	m.recs[1].hold_head = UINT32_MAX;
	m.recs[1].holds = 7;
	he[1] = (struct l1_hold_ent){ UINT32_MAX, UINT32_MAX, 5, UINT32_MAX };
	he[2] = (struct l1_hold_ent){ 2, 4000, 3, 0 };
	m.h->hold_free = 3 + 1;
	he[3].next = UINT32_MAX;
	damaged_then_repaired(&m, "hold", 0);
	img_drop(&m);
}
END_TEST

/* A hold count at its 32-bit limit is consistent (repair keeps it); the
 * next hold must be refused, not wrap the counts (the fuzzer found that). */
START_TEST(hold_count_at_limit)
{
	struct img m;
	img_make(&m, "holdmax");
	struct l1_arena *a;
	struct l1_obj o;
	ck_assert_int_eq(l1_arena_open(m.path, NULL, &a), 0);
	struct l1_client *cl = (struct l1_client *)(void *)(m.base + m.h->clients_off);
	struct l1_hold_ent *he = (struct l1_hold_ent *)(void *)(m.base + m.h->holds_off);
	ck_assert_int_eq(cl[0].state, L1_CLIENT_LIVE);       /* this process */
	ck_assert_int_eq(cl[0].pid, getpid());
	ck_assert_uint_eq(m.h->hold_free, 1);
	m.h->hold_free = he[0].next;
	he[0] = (struct l1_hold_ent){ 0, cl[0].gen << L1_CLIENT_BITS, UINT32_MAX, 0 };
	m.recs[0].hold_head = 1;
	m.recs[0].holds = UINT32_MAX;
	cl[0].holds = UINT32_MAX;
	atomic_store(&m.h->nholds, UINT32_MAX);
	l1t_memcheck_clean(a);
	ck_assert_int_eq(l1_hold(a, m.ids[0], &o), -EOVERFLOW);
	ck_assert_int_eq(l1_hold_key(a, "key0", &o), -EOVERFLOW);
	ck_assert_uint_eq(m.recs[0].holds, UINT32_MAX);
	ck_assert_uint_eq(atomic_load(&m.h->nholds), UINT32_MAX);
	l1t_memcheck_clean(a);
	ck_assert_int_eq(l1_release(a, m.ids[0]), 0);
	ck_assert_int_eq(l1_hold(a, m.ids[0], &o), 0);
	l1t_memcheck_clean(a);
	l1_arena_close(a);
	img_drop(&m);
}
END_TEST

/* Damage that appears while the pool is attached (open would refuse the
 * counters): a wild link in the hold free list, then counters out of
 * range.  Holds keep working, memcheck names both, repair mends both (the
 * fuzzer found the first making the second). */
START_TEST(damage_while_attached)
{
	struct img m;
	img_make(&m, "attached");
	struct l1_arena *a;
	struct l1_obj o;
	char rep[8192];
	ck_assert_int_eq(l1_arena_open(m.path, NULL, &a), 0);
	struct l1_hold_ent *he = (struct l1_hold_ent *)(void *)(m.base + m.h->holds_off);
	he[m.h->hold_free - 1].next = 0x5d000004;
	ck_assert_int_eq(l1_hold(a, m.ids[0], &o), 0);       /* pops the entry */
	ck_assert_uint_le(m.h->hold_free, m.h->max_holds);
	ck_assert_int_eq(l1_release(a, m.ids[0]), 0);
	ck_assert_int_gt(l1_arena_memcheck(a, 0, rep, sizeof rep), 0);
	ck_assert_msg(strstr(rep, "hold entries are neither"), "%s", rep);
	ck_assert_int_eq(l1_arena_memcheck(a, 1, rep, sizeof rep), 0);
	l1t_memcheck_clean(a);
	m.h->hold_free = 0x5d000004;
	m.h->slot_top = m.h->max_objects + 5;
	m.h->dirty_top = m.h->max_dirty + 1;
	ck_assert_int_gt(l1_arena_memcheck(a, 0, rep, sizeof rep), 0);
	ck_assert_msg(strstr(rep, "counters out of range"), "%s", rep);
	ck_assert_int_eq(l1_arena_memcheck(a, 1, rep, sizeof rep), 0);
	l1t_memcheck_clean(a);
	expect_intact(a, 0);
	fill_pool(&m, a, 0);
	l1t_memcheck_clean(a);
	l1_arena_close(a);
	img_drop(&m);
}
END_TEST

START_TEST(slot_stack)
{
	struct img m;
	img_make(&m, "slots");
	uint32_t *slots = (uint32_t *)(void *)(m.base + m.h->slots_off);
	uint64_t top = m.h->slot_top;
	/* the next allocations would take: a slot past the table, a live
	 * published slot, the same slot twice */
	slots[top - 1] = UINT32_MAX;
	slots[top - 2] = 0;
	slots[top - 3] = (uint32_t)m.h->max_objects;
	slots[top - 4] = slots[top - 5];
	damaged_then_repaired(&m, "free-slot", 0);
	img_drop(&m);
}
END_TEST

START_TEST(counters_and_clients)
{
	struct img m;
	img_make(&m, "counters");
	struct l1_client *cl = (struct l1_client *)(void *)(m.base + m.h->clients_off);
	atomic_store(&m.h->used_bytes, UINT64_MAX);
	atomic_store(&m.h->dirty_bytes, 12345);
	atomic_store(&m.h->nobj[L1_STATE_FREE], 0);
	atomic_store(&m.h->nholds, 77);
	m.h->search_hint = UINT64_MAX;
	m.recs[4].layout_id = 999999;                        /* unknown layout */
	m.recs[6].gen = 0;
	for (uint64_t i = 0; i < m.h->max_clients; i += 3) {  /* ghosts */
		cl[i].state = L1_CLIENT_LIVE;
		cl[i].pid = (int32_t)(0x7ffff000 + i);
		cl[i].holds = 1000;
	}
	struct l1_arena *a;
	char rep[8192];
	ck_assert_int_eq(l1_arena_open(m.path, NULL, &a), 0);
	atomic_store(&m.h->nclients, UINT64_MAX);   /* as after a wrap (attach recounts) */
	int n = l1_arena_memcheck(a, 0, rep, sizeof rep);
	ck_assert_int_ge(n, 4);
	ck_assert_ptr_nonnull(strstr(rep, "used_bytes"));
	ck_assert_ptr_nonnull(strstr(rep, "unknown layout"));
	ck_assert_ptr_nonnull(strstr(rep, "generation 0"));
	ck_assert_ptr_nonnull(strstr(rep, "clients counter says 18446744073709551615"));
	api_battery(&m, a);
	/* a record with an unknown layout or generation 0 is not derived state:
	 * repair rebuilds what it can and says what is left */
	n = l1_arena_memcheck(a, 1, rep, sizeof rep);
	ck_assert_int_ge(n, 0);
	ck_assert_ptr_nonnull(strstr(rep, "repaired"));
	ck_assert_ptr_null(strstr(rep + (strstr(rep, "repaired") - rep), "used_bytes"));
	struct l1_client_info ci[8];
	ck_assert_int_eq(l1_arena_clients(a, ci, 8), 1);     /* the ghosts are gone */
	ck_assert_int_eq(ci[0].pid, getpid());
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.clients, 1);                     /* recounted, not wrapped */
	expect_intact(a, 0);
	l1_arena_close(a);
	img_drop(&m);
}
END_TEST

/* The same damage, mended from the shell. */
START_TEST(l1ctl_repairs)
{
	const char *build = getenv("BUILD");
	char l1ctl[512], cmd[1024];
	snprintf(l1ctl, sizeof l1ctl, "%s/bin/l1ctl", build && *build ? build : "build");
	if (access(l1ctl, X_OK) != 0) {
		fprintf(stderr, "check_hostile: %s not built; l1ctl case skipped\n", l1ctl);
		return;
	}
	struct img m;
	img_make(&m, "ctl");
	uint64_t *bm = bitmap_of(&m);
	bm[0] = 0;
	m.recs[2].offset = m.h->file_size + MiB;
	m.recs[0].key_next = 1;
	img_unmap(&m);
	snprintf(cmd, sizeof cmd, "%s memcheck --path %s >/dev/null 2>&1", l1ctl, m.path);
	int st = system(cmd);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 3);           /* problems found */
	snprintf(cmd, sizeof cmd, "%s memcheck --repair --path %s >/dev/null 2>&1", l1ctl,
		 m.path);
	st = system(cmd);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	snprintf(cmd, sizeof cmd, "%s memcheck --path %s >/dev/null 2>&1", l1ctl, m.path);
	st = system(cmd);
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	struct l1_arena *a;
	ck_assert_int_eq(l1_arena_open(m.path, NULL, &a), 0);
	l1t_memcheck_clean(a);
	expect_intact(a, 0x4);
	l1_arena_close(a);
	/* and a header l1ctl must refuse with a sentence, not a crash */
	img_map(&m);
	m.h->nbuckets = 1ull << 62;
	img_unmap(&m);
	snprintf(cmd, sizeof cmd, "%s memcheck --path %s >/dev/null 2>&1", l1ctl, m.path);
	st = system(cmd);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 1);
	unlink(m.path);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("hostile");
	TCase *t = tcase_create("header");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, short_files);
	tcase_add_test(t, truncated_and_extended);
	tcase_add_test(t, magic_and_version);
	tcase_add_test(t, geometry);
	tcase_add_test(t, regions);
	suite_add_tcase(s, t);
	t = tcase_create("records");
	tcase_set_timeout(t, 60);
	tcase_add_test(t, bitmap_disagrees);
	tcase_add_test(t, bitmap_all_free_or_all_taken);
	tcase_add_test(t, records_outside_data);
	tcase_add_test(t, records_bad_sizes);
	tcase_add_test(t, records_dirty_outside);
	tcase_add_test(t, dirty_table_lies);
	tcase_add_test(t, records_overlap_and_states);
	tcase_add_test(t, key_index_loops);
	tcase_add_test(t, key_index_wild_links);
	tcase_add_test(t, hold_chains);
	tcase_add_test(t, hold_count_at_limit);
	tcase_add_test(t, damage_while_attached);
	tcase_add_test(t, slot_stack);
	tcase_add_test(t, counters_and_clients);
	tcase_add_test(t, l1ctl_repairs);
	suite_add_tcase(s, t);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
