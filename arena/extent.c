/*
 * extent.c - the geometry of an extent (a record's bytes, or a dirty
 * extent's): when it may be trusted (inside the committed data region,
 * aligned to blocks, inside one grow step), its blocks, and claiming them
 * in the bitmap during a rebuild.  Pure functions of the header and the
 * bitmap; callers hold the pool lock where they write.  Used by the object
 * code, the dirty-extent table, gc, repair and memcheck; calls only
 * bitmap.c.
 */
#include "internal.h"

/* Geometry an extent must have to be trusted (and before anything derives
 * a block, a pointer or a zeroing extent from it): inside the committed
 * data region, aligned, inside one grow step. */
int l1__extent_ok(const struct l1_arena *a, uint64_t offset, uint64_t size)
{
	const struct l1_hdr *h = a->h;
	uint64_t committed = atomic_load(&((struct l1_hdr *)h)->committed);
	uint64_t mask = h->block_size - 1;     /* a power of two (validated) */
	if (offset < h->data_off || size == 0 || (size & mask) ||
	    ((offset - h->data_off) & mask))
		return 0;
	uint64_t rel = offset - h->data_off;
	uint64_t usable = h->nblocks * h->block_size;   /* the bitmap's extent */
	if (committed > usable)
		committed = usable;
	if (rel > committed || size > committed - rel)
		return 0;
	return size <= h->grow_step - rel % h->grow_step;       /* inside one step */
}

int l1__rec_geometry_ok(const struct l1_arena *a, const struct l1_rec *r)
{
	return l1__extent_ok(a, r->offset, r->size);
}

/* The blocks of an extent (its geometry checked first). */
void l1__extent_blocks(const struct l1_arena *a, uint64_t offset, uint64_t size, uint64_t *b,
		       uint64_t *n)
{
	*b = (offset - a->h->data_off) / a->h->block_size;
	*n = size / a->h->block_size;
}

/* Rebuild: takes an extent's blocks: 0, or -1 if the extent is impossible
 * or overlaps blocks taken before it (then its bytes are not trusted). */
int l1__extent_claim(struct l1_arena *a, uint64_t offset, uint64_t size)
{
	uint64_t b, n;
	if (!l1__extent_ok(a, offset, size))
		return -1;
	l1__extent_blocks(a, offset, size, &b, &n);
	if (l1__bm_test_any(a, b, n))
		return -1;
	l1__bm_set(a, b, n);
	return 0;
}
