/*
 * bitmap.c - run search and claim over the pool's shared allocation bitmap.
 * Bit i set means block i (block = align bytes) of the data region is taken
 * by a live or dirty record.  A summary level keeps one bit per bitmap word,
 * set when that word is all ones, so searches skip full stretches 4096
 * blocks at a time.  Runs never cross a grow-step boundary: the step is the
 * unit of lazy commitment and of CUDA registration, and every object must
 * lie inside one.  All calls run under the pool lock; the bitmap is derived
 * state (repair.c rebuilds it from the records).
 *
 * search_hint in the header is the lowest block that may be free (every
 * block below it is taken): l1__bm_clear lowers it, the allocator raises it.
 *
 * l1__bm_find(n, from, limit) returns the first start s >= from with
 * s + n <= limit whose n bits are clear and inside one step, or -1; it
 * claims nothing.  l1__bm_set/clear claim and release a run and keep the
 * summary true.
 */
#include "internal.h"

static inline uint64_t ones_from(uint64_t bit)
{
	return ~0ull << (bit & 63);
}

static inline void summary_update(struct l1_arena *a, uint64_t w)
{
	uint64_t m = 1ull << (w & 63);
	if (a->bitmap[w] == ~0ull)
		a->summary[w >> 6] |= m;
	else
		a->summary[w >> 6] &= ~m;
}

/* First clear bit >= pos, or limit. */
uint64_t l1__bm_next_zero(const struct l1_arena *a, uint64_t pos, uint64_t limit)
{
	if (pos >= limit)
		return limit;
	uint64_t w = pos >> 6;
	uint64_t nw = (limit + 63) >> 6;
	uint64_t bits = ~a->bitmap[w] & ones_from(pos);
	for (;;) {
		if (bits) {
			uint64_t r = (w << 6) + (uint64_t)__builtin_ctzll(bits);
			return r < limit ? r : limit;
		}
		if (++w >= nw)
			return limit;
		uint64_t sb = ~a->summary[w >> 6] & ones_from(w);
		while (!sb) {
			uint64_t s = (w >> 6) + 1;
			w = s << 6;
			if (w >= nw)
				return limit;
			sb = ~a->summary[s];
		}
		w = ((w >> 6) << 6) + (uint64_t)__builtin_ctzll(sb);
		if (w >= nw)
			return limit;
		bits = ~a->bitmap[w];
	}
}

/* First set bit >= pos, or limit. */
static uint64_t next_one(const struct l1_arena *a, uint64_t pos, uint64_t limit)
{
	if (pos >= limit)
		return limit;
	uint64_t w = pos >> 6;
	uint64_t nw = (limit + 63) >> 6;
	uint64_t bits = a->bitmap[w] & ones_from(pos);
	while (!bits) {
		if (++w >= nw)
			return limit;
		bits = a->bitmap[w];
	}
	uint64_t r = (w << 6) + (uint64_t)__builtin_ctzll(bits);
	return r < limit ? r : limit;
}

/* End of the free run that starts at b (place.c, zhelp.c). */
uint64_t l1__bm_run_end(const struct l1_arena *a, uint64_t b, uint64_t hi)
{
	return next_one(a, b, hi);
}

int64_t l1__bm_find(struct l1_arena *a, uint64_t n, uint64_t from, uint64_t limit)
{
	uint64_t step = a->h->grow_step / a->h->block_size;
	uint64_t pos = from;
	if (n == 0 || n > step)
		return -1;
	while (pos + n <= limit) {
		uint64_t z = l1__bm_next_zero(a, pos, limit);
		if (z + n > limit)
			return -1;
		uint64_t step_end = (z / step + 1) * step;
		if (z + n > step_end) {
			pos = step_end;
			continue;
		}
		uint64_t o = next_one(a, z, z + n);
		if (o >= z + n)
			return (int64_t)z;
		pos = o + 1;
	}
	return -1;
}

static void run_apply(struct l1_arena *a, uint64_t start, uint64_t n, int set)
{
	uint64_t end = start + n;
	while (start < end) {
		uint64_t w = start >> 6;
		uint64_t lo = start & 63;
		uint64_t hi = (end - (w << 6)) < 64 ? end - (w << 6) : 64;
		uint64_t mask = (hi == 64 ? ~0ull : ((1ull << hi) - 1)) & (~0ull << lo);
		if (set)
			a->bitmap[w] |= mask;
		else
			a->bitmap[w] &= ~mask;
		summary_update(a, w);
		start = (w + 1) << 6;
	}
}

void l1__bm_set(struct l1_arena *a, uint64_t start, uint64_t n)
{
	run_apply(a, start, n, 1);
}

void l1__bm_clear(struct l1_arena *a, uint64_t start, uint64_t n)
{
	run_apply(a, start, n, 0);
	if (start < a->h->search_hint)
		a->h->search_hint = start;      /* the lowest block that may be free */
}

int l1__bm_test_any(const struct l1_arena *a, uint64_t start, uint64_t n)
{
	return next_one(a, start, start + n) < start + n;
}

uint64_t l1__bm_largest_free(const struct l1_arena *a, uint64_t limit)
{
	uint64_t step = a->h->grow_step / a->h->block_size;
	uint64_t best = 0;
	for (uint64_t s0 = 0; s0 < limit; s0 += step) {
		uint64_t s1 = s0 + step < limit ? s0 + step : limit;
		uint64_t pos = s0;
		while (pos < s1) {
			uint64_t z = l1__bm_next_zero(a, pos, s1);
			if (z >= s1)
				break;
			uint64_t o = next_one(a, z, s1);
			if (o - z > best)
				best = o - z;
			pos = o;
		}
	}
	return best * a->h->block_size;
}

void l1__bm_rebuild_summary(struct l1_arena *a)
{
	for (uint64_t i = 0; i < a->h->summary_words; i++)
		a->summary[i] = 0;
	for (uint64_t w = 0; w < a->h->bitmap_words; w++)
		summary_update(a, w);
}
