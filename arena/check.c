/*
 * check.c - integrity: validation of a header before anything trusts it,
 * and memcheck, which recomputes everything the records imply and compares
 * it with what the pool says: bitmap and summary, no overlaps, every record
 * and dirty extent inside the committed data region and inside one grow
 * step, free-slot and dirty free stacks, key index (reachable, no loops),
 * holds, the client table and counters.  memcheck runs under the pool lock;
 * --repair hands over to repair.c (the rebuild) and checks again.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

struct region {
	const char *name;
	uint64_t off, len;
};

static int validate_geometry(const struct l1_hdr *h, uint64_t file_size)
{
	if (file_size < L1_HDR_SIZE)
		return l1__err(-EBADMSG, "file is %llu bytes: too small to be a pool",
			       (unsigned long long)file_size);
	if (h->magic != L1_MAGIC)
		return l1__err(-EBADMSG, "not an l1arena pool (bad magic)");
	if (h->major != L1_FMT_MAJOR)
		return l1__err(-EPROTO, "pool format version %u.%u; this library reads %d.x "
			       "(pools older than 3 judged liveness by /proc, which is not "
			       "safe): remove it with `l1ctl destroy --force` and create it "
			       "again", h->major, h->minor, L1_FMT_MAJOR);
	if (h->hdr_size != L1_HDR_SIZE || h->rec_size != L1_REC_SIZE)
		return l1__err(-EBADMSG, "header or record size differs from this library's");
	if (h->file_size != file_size)
		return l1__err(-EBADMSG, "pool file is %llu bytes but its header says %llu "
			       "(truncated or grown by hand)", (unsigned long long)file_size,
			       (unsigned long long)h->file_size);
	if (!pow2(h->block_size) || h->block_size < 64 || !pow2(h->hugepage_size) ||
	    h->hugepage_size < 4096)
		return l1__err(-EBADMSG, "block or huge page size is not a power of two");
	if (h->data_off % h->hugepage_size || h->data_off % h->block_size ||
	    h->data_off > file_size || h->data_size > file_size - h->data_off)
		return l1__err(-EBADMSG, "data region lies outside the file");
	if (h->pool_size > h->data_size || h->nblocks != l1__pool_size(h) / h->block_size ||
	    h->nblocks == 0)
		return l1__err(-EBADMSG, "block count disagrees with the pool size");
	/* the creator caps the step at the data size; a larger one makes lazy
	 * growth's round-up wrap, and grow "succeed" without growing, forever */
	if (!h->grow_step || h->grow_step % h->block_size || h->grow_step > h->data_size)
		return l1__err(-EBADMSG, "grow step is not a multiple of the block size, or "
			       "is larger than the data");
	/* nbuckets is bounded before it is multiplied: 2^62 buckets would make a
	 * region of 2^64 = 0 bytes that passes the overlap test below */
	if (!h->max_objects || h->max_objects >= UINT32_MAX || !pow2(h->nbuckets) ||
	    h->nbuckets > (1ull << 32) ||
	    h->max_layouts > L1_MAX_LAYOUTS || h->max_clients > L1_MAX_CLIENTS ||
	    !h->max_holds || h->max_holds >= UINT32_MAX || h->max_dirty > h->max_objects)
		return l1__err(-EBADMSG, "table sizes out of range");
	if (h->bitmap_words != (h->nblocks + 63) / 64 ||
	    h->summary_words != (h->bitmap_words + 63) / 64)
		return l1__err(-EBADMSG, "bitmap size disagrees with the block count");
	struct region rg[] = {
		{ "records", h->records_off, h->max_objects * L1_REC_SIZE },
		{ "layouts", h->layouts_off, h->max_layouts * L1_LAYOUT_SLOT_SIZE },
		{ "key buckets", h->buckets_off, h->nbuckets * 4 },
		{ "bitmap", h->bitmap_off, h->bitmap_words * 8 },
		{ "summary", h->summary_off, h->summary_words * 8 },
		{ "holds", h->holds_off, h->max_holds * L1_HOLD_SIZE },
		{ "slots", h->slots_off, h->max_objects * 4 },
		{ "clients", h->clients_off, h->max_clients * L1_CLIENT_SIZE },
		{ "dirty extents", h->dirty_off, h->max_dirty * L1_DIRTY_SIZE },
		{ "dirty stack", h->dirty_stack_off, h->max_dirty * 4 },
	};
	uint64_t at = L1_HDR_SIZE;
	for (unsigned i = 0; i < sizeof rg / sizeof rg[0]; i++) {
		if (rg[i].off < at || rg[i].off % 8 || rg[i].len > h->data_off ||
		    rg[i].off > h->data_off - rg[i].len)
			return l1__err(-EBADMSG, "region '%s' overlaps another or the data",
				       rg[i].name);
		at = rg[i].off + rg[i].len;
	}
	return 0;
}

/* The header's counters, all of them derived (rebuild resets them). */
static int counters_ok(const struct l1_hdr *h)
{
	if (atomic_load(&((struct l1_hdr *)h)->committed) > h->data_size ||
	    h->slot_top > h->max_objects || h->hold_free > h->max_holds ||
	    h->dirty_top > h->max_dirty || h->nlayouts > h->max_layouts)
		return l1__err(-EBADMSG, "header counters out of range (committed %llu of %llu, "
			       "free slots %llu of %llu, hold free list head %llu of %llu, dirty "
			       "free stack %llu of %llu, layouts %u of %llu)",
			       (unsigned long long)atomic_load(&((struct l1_hdr *)h)->committed),
			       (unsigned long long)h->data_size,
			       (unsigned long long)h->slot_top, (unsigned long long)h->max_objects,
			       (unsigned long long)h->hold_free, (unsigned long long)h->max_holds,
			       (unsigned long long)h->dirty_top, (unsigned long long)h->max_dirty,
			       h->nlayouts, (unsigned long long)h->max_layouts);
	return 0;
}

int l1__validate_header(const struct l1_hdr *h, uint64_t file_size)
{
	int r = validate_geometry(h, file_size);
	return r ? r : counters_ok(h);
}


/* ---- memcheck ---------------------------------------------------------- */

struct report {
	char *buf;
	size_t len, n;
	int problems;
};

static void vappend(struct report *rp, const char *fmt, va_list ap)
{
	if (!rp->buf || rp->n + 2 >= rp->len)
		return;
	int w = vsnprintf(rp->buf + rp->n, rp->len - rp->n, fmt, ap);
	if (w > 0)
		rp->n += (size_t)w < rp->len - rp->n ? (size_t)w : rp->len - rp->n - 1;
}

/* A line of the report that counts as a problem. */
static void problem(struct report *rp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void problem(struct report *rp, const char *fmt, ...)
{
	va_list ap;
	rp->problems++;
	va_start(ap, fmt);
	vappend(rp, fmt, ap);
	va_end(ap);
	if (rp->buf && rp->n + 1 < rp->len) {
		rp->buf[rp->n++] = '\n';
		rp->buf[rp->n] = 0;
	}
}

/* Text of the report that is not a problem. */
static void note(struct report *rp, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void note(struct report *rp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vappend(rp, fmt, ap);
	va_end(ap);
}

/* The dirty-extent table: geometry, overlaps (into expect), counters and
 * free stack; returns the bytes its entries hold. */
static uint64_t check_dirty(struct l1_arena *a, struct report *rp, uint64_t *expect)
{
	struct l1_hdr *h = a->h;
	uint64_t bytes = 0, used = 0, nfree = 0;
	if (!a->dirty)
		return 0;
	for (uint64_t i = 0; i < h->max_dirty; i++) {
		struct l1_dirty_ent *e = &a->dirty[i];
		if (!e->offset) {
			nfree++;
			continue;
		}
		if (!l1__extent_ok(a, e->offset, e->size)) {
			problem(rp, "dirty extent %llu: [%llu, +%llu) is outside the committed data "
				"region, misaligned or straddles a grow step", (unsigned long long)i,
				(unsigned long long)e->offset, (unsigned long long)e->size);
			continue;
		}
		uint64_t b, n;
		l1__extent_blocks(a, e->offset, e->size, &b, &n);
		for (uint64_t k = b; k < b + n; k++) {
			if (expect[k >> 6] & (1ull << (k & 63))) {
				problem(rp, "dirty extent %llu: overlaps another extent at block %llu",
					(unsigned long long)i, (unsigned long long)k);
				break;
			}
			expect[k >> 6] |= 1ull << (k & 63);
		}
		bytes += e->size;
		used++;
	}
	if (used != atomic_load(&h->dirty_extents))
		problem(rp, "dirty extent counter says %llu, the table holds %llu",
			(unsigned long long)atomic_load(&h->dirty_extents),
			(unsigned long long)used);
	if (h->dirty_top != nfree)
		problem(rp, "dirty free stack has %llu entries, %llu dirty entries are free",
			(unsigned long long)h->dirty_top, (unsigned long long)nfree);
	uint64_t *seen = calloc((h->max_dirty + 63) / 64, 8);
	if (!seen) {
		problem(rp, "out of memory while checking");
		return bytes;
	}
	for (uint64_t i = 0; i < h->dirty_top && i < h->max_dirty; i++) {
		uint32_t d = a->dirty_stack[i];
		if (d >= h->max_dirty || a->dirty[d].offset || (seen[d >> 6] & (1ull << (d & 63)))) {
			problem(rp, "dirty free stack entry %llu (%u) is not a free, unique entry",
				(unsigned long long)i, d);
			break;
		}
		seen[d >> 6] |= 1ull << (d & 63);
	}
	free(seen);
	return bytes;
}

static void check_records(struct l1_arena *a, struct report *rp, uint64_t *expect,
			  uint64_t table_dirty)
{
	struct l1_hdr *h = a->h;
	uint64_t used = 0, dirty = table_dirty, nobj[5] = { 0 }, holds = 0;
	uint32_t nl = h->nlayouts <= L1_MAX_LAYOUTS ? h->nlayouts : L1_MAX_LAYOUTS;
	uint32_t refs[L1_MAX_LAYOUTS] = { 0 };
	for (uint64_t s = 0; s < h->max_objects; s++) {
		struct l1_rec *r = &a->recs[s];
		uint32_t st = atomic_load(&r->state);
		if (st > L1_STATE_DOOMED) {
			problem(rp, "record %llu: unknown state %u", (unsigned long long)s, st);
			continue;
		}
		nobj[st]++;
		if (st == L1_STATE_FREE)
			continue;
		if (!l1__rec_geometry_ok(a, r)) {
			problem(rp, "record %llu: extent [%llu, +%llu) is outside the committed data "
				"region, misaligned or straddles a grow step", (unsigned long long)s,
				(unsigned long long)r->offset, (unsigned long long)r->size);
			continue;
		}
		if (r->gen == 0)
			problem(rp, "record %llu: live with generation 0", (unsigned long long)s);
		if (st == L1_STATE_DIRTY)
			;       /* being zeroed: its layout no longer matters */
		else if (r->layout_id >= nl)
			problem(rp, "record %llu: unknown layout %u", (unsigned long long)s,
				r->layout_id);
		else if (a->layouts[r->layout_id].bytes > r->size)
			problem(rp, "record %llu: smaller than its layout", (unsigned long long)s);
		else
			refs[r->layout_id]++;
		if (r->key_len > L1_KEY_MAX)
			problem(rp, "record %llu: key length %u", (unsigned long long)s, r->key_len);
		uint64_t b, n;
		l1__extent_blocks(a, r->offset, r->size, &b, &n);
		for (uint64_t i = b; i < b + n; i++) {
			if (expect[i >> 6] & (1ull << (i & 63))) {
				problem(rp, "record %llu: overlaps another record at block %llu",
					(unsigned long long)s, (unsigned long long)i);
				break;
			}
			expect[i >> 6] |= 1ull << (i & 63);
		}
		if (st == L1_STATE_DIRTY)
			dirty += r->size;
		else
			used += r->size;
		holds += r->holds;
		if (st == L1_STATE_PUBLISHED && r->key_len && r->key_len <= L1_KEY_MAX &&
		    l1__key_find(a, r->key, r->key_len) != (int64_t)s)
			problem(rp, "record %llu: key '%.*s' not found in the key index",
				(unsigned long long)s, (int)(r->key_len & 127), r->key);
		if (st == L1_STATE_DOOMED && r->holds == 0)
			problem(rp, "record %llu: doomed without holds", (unsigned long long)s);
	}
	if (used != atomic_load(&h->used_bytes))
		problem(rp, "used_bytes counter says %llu, records hold %llu",
			(unsigned long long)atomic_load(&h->used_bytes), (unsigned long long)used);
	if (dirty != atomic_load(&h->dirty_bytes))
		problem(rp, "dirty_bytes counter says %llu, records and dirty extents hold %llu",
			(unsigned long long)atomic_load(&h->dirty_bytes), (unsigned long long)dirty);
	for (int i = 0; i < 5; i++)
		if (nobj[i] != atomic_load(&h->nobj[i]))
			problem(rp, "%s object counter says %llu, records say %llu",
				l1_state_name(i), (unsigned long long)atomic_load(&h->nobj[i]),
				(unsigned long long)nobj[i]);
	for (uint32_t i = 0; i < nl; i++)
		if (a->layouts[i].refs != refs[i])
			problem(rp, "layout %u: counted %u live objects, records say %u", i,
				a->layouts[i].refs, refs[i]);
	if (holds != atomic_load(&h->nholds))
		problem(rp, "holds counter says %llu, records say %llu",
			(unsigned long long)atomic_load(&h->nholds), (unsigned long long)holds);
	if (h->slot_top != nobj[L1_STATE_FREE])
		problem(rp, "free-slot stack has %llu entries, %llu records are free",
			(unsigned long long)h->slot_top, (unsigned long long)nobj[L1_STATE_FREE]);
}

static void check_bitmap(struct l1_arena *a, struct report *rp, const uint64_t *expect)
{
	struct l1_hdr *h = a->h;
	uint64_t leaked = 0, lost = 0;
	for (uint64_t w = 0; w < h->bitmap_words; w++) {
		leaked += (uint64_t)__builtin_popcountll(a->bitmap[w] & ~expect[w]);
		lost += (uint64_t)__builtin_popcountll(~a->bitmap[w] & expect[w]);
		int full = a->bitmap[w] == ~0ull;
		if (full != !!(a->summary[w >> 6] & (1ull << (w & 63))))
			problem(rp, "summary bit of bitmap word %llu is wrong", (unsigned long long)w);
	}
	if (leaked)
		problem(rp, "bitmap: %llu blocks marked taken that no record holds (leak)",
			(unsigned long long)leaked);
	if (lost)
		problem(rp, "bitmap: %llu blocks held by records are marked free",
			(unsigned long long)lost);
}

static void check_slots_keys_holds(struct l1_arena *a, struct report *rp)
{
	struct l1_hdr *h = a->h;
	uint64_t *seen = calloc((h->max_objects + 63) / 64, 8);
	if (!seen) {
		problem(rp, "out of memory while checking");
		return;
	}
	for (uint64_t i = 0; i < h->slot_top && i < h->max_objects; i++) {
		uint32_t s = a->slots[i];
		if (s >= h->max_objects || atomic_load(&a->recs[s].state) != L1_STATE_FREE ||
		    (seen[s >> 6] & (1ull << (s & 63)))) {
			problem(rp, "free-slot stack entry %llu (slot %u) is not a free, unique slot",
				(unsigned long long)i, s);
			break;
		}
		seen[s >> 6] |= 1ull << (s & 63);
	}
	/* each record is on one chain at most: a record met twice means a loop
	 * (or chains that merge), and stops the walk, so that damage costs
	 * O(records) and not O(buckets x records) */
	memset(seen, 0, (h->max_objects + 63) / 64 * 8);
	uint64_t chained = 0;
	for (uint64_t b = 0; b < h->nbuckets; b++) {
		uint32_t link = a->buckets[b];
		while (link) {
			uint32_t s = link - 1;
			if (s >= h->max_objects || (seen[s >> 6] & (1ull << (s & 63)))) {
				problem(rp, "key bucket %llu: chain leaves the table or loops",
					(unsigned long long)b);
				break;
			}
			seen[s >> 6] |= 1ull << (s & 63);
			struct l1_rec *r = &a->recs[s];
			if ((r->key_hash & (h->nbuckets - 1)) != b ||
			    atomic_load(&r->state) != L1_STATE_PUBLISHED)
				problem(rp, "key bucket %llu: holds record %u that does not belong",
					(unsigned long long)b, s);
			chained++;
			link = r->key_next;
		}
	}
	(void)chained;
	/* the same for hold entries, each on one record's chain at most */
	uint64_t *hseen = calloc((h->max_holds + 63) / 64, 8);
	if (!hseen) {
		problem(rp, "out of memory while checking");
		free(seen);
		return;
	}
	for (uint64_t s = 0; s < h->max_objects; s++) {
		struct l1_rec *r = &a->recs[s];
		uint64_t sum = 0;
		for (uint32_t link = r->hold_head; link; link = a->holds[link - 1].next) {
			uint32_t i = link - 1;
			if (link > h->max_holds || (hseen[i >> 6] & (1ull << (i & 63)))) {
				problem(rp, "record %llu: hold chain leaves the table or loops",
					(unsigned long long)s);
				break;
			}
			hseen[i >> 6] |= 1ull << (i & 63);
			sum += a->holds[i].count;
		}
		if (sum != r->holds)
			problem(rp, "record %llu: %u holds counted, entries sum to %llu",
				(unsigned long long)s, r->holds, (unsigned long long)sum);
	}
	/* the free list: in the table, no loops, only unused entries; with the
	 * chains it must cover every entry (else some are lost for good) */
	uint64_t reached = 0;
	for (uint64_t link = h->hold_free; link; link = a->holds[link - 1].next) {
		uint64_t i = link - 1;
		if (link > h->max_holds || (hseen[i >> 6] & (1ull << (i & 63))) ||
		    a->holds[i].count) {
			problem(rp, "hold free list leaves the table, loops or holds a used entry");
			break;
		}
		hseen[i >> 6] |= 1ull << (i & 63);
	}
	for (uint64_t w = 0; w < (h->max_holds + 63) / 64; w++)
		reached += (uint64_t)__builtin_popcountll(hseen[w]);
	if (reached < h->max_holds)
		problem(rp, "%llu hold entries are neither on a record's chain nor free",
			(unsigned long long)(h->max_holds - reached));
	free(hseen);
	free(seen);
}

/* The client table: known states, and the clients counter (derived: the
 * listed clients; it must never drift, let alone wrap). */
static void check_clients(struct l1_arena *a, struct report *rp)
{
	struct l1_hdr *h = a->h;
	for (uint64_t i = 0; i < h->max_clients; i++)
		if (a->clients[i].state > L1_CLIENT_ANON)
			problem(rp, "client %llu: unknown state %u", (unsigned long long)i,
				a->clients[i].state);
	uint64_t n = l1__clients_live(a);
	if (atomic_load(&h->nclients) != n)
		problem(rp, "clients counter says %llu, the client table lists %llu",
			(unsigned long long)atomic_load(&h->nclients), (unsigned long long)n);
}

static int run_checks(struct l1_arena *a, struct report *rp)
{
	int before = rp->problems;
	uint64_t *expect = calloc(a->h->bitmap_words, 8);
	if (!expect) {
		problem(rp, "out of memory while checking");
		return 1;
	}
	uint64_t table_dirty = check_dirty(a, rp, expect);
	check_records(a, rp, expect, table_dirty);
	check_bitmap(a, rp, expect);
	check_slots_keys_holds(a, rp);
	check_clients(a, rp);
	free(expect);
	return rp->problems - before;
}

int l1_arena_memcheck(struct l1_arena *a, int repair, char *out, size_t len)
{
	struct report rp = { out, len, 0, 0 };
	if (out && len)
		out[0] = 0;
	int r = l1__writable(a, repair ? "repair the pool" :
			     "check the pool (memcheck takes the pool lock, which lies in the "
			     "pool file)");
	if (r)
		return r;
	r = l1__lock(a);
	if (r)
		return r;
	/* under the lock: the header's counters change with every allocation;
	 * bad geometry ends the check, bad counters are derived state */
	if ((r = validate_geometry(a->h, a->map_size))) {
		problem(&rp, "header: %s", l1_last_error());
		l1__unlock(a);
		return rp.problems;
	}
	if (counters_ok(a->h))
		problem(&rp, "header: %s", l1_last_error());
	int found = rp.problems + run_checks(a, &rp);
	if (repair && found) {
		l1__rebuild(a);
		struct report after = { NULL, 0, 0, 0 };
		int left = run_checks(a, &after) + (counters_ok(a->h) != 0);
		note(&rp, "repaired: derived state rebuilt from the records; %d problem(s) left\n",
		     left);
		l1__unlock(a);
		return left;
	}
	l1__unlock(a);
	if (!found)
		note(&rp, "clean\n");
	return found;
}
