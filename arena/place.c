/*
 * place.c - best-fit placement of large batches, on request
 * (L1ARENA_PLACE=best; the default is alloc.c's address-ordered first fit).
 * With it, a batch whose bytes reach L1_PLACE_BEST_MIN goes, as one run, to
 * the smallest free run that holds it (lowest address among equals), object
 * by object if no run holds the batch, so that a 32 MiB chunk does not split
 * the one run a 32 MiB chunk needs later while a 40 MiB hole would do.
 * Measured on l1bench kv (2 GiB, 20 000 requests): the utilisation at the
 * first OOM after churn was 0.966 with first fit and with best fit from any
 * threshold (64 KiB to 4 MiB), zeroing on or off: the trace's first OOM is
 * the same 2 x 32 MiB batch with 69 MiB free either way, and the 0.87-0.92
 * seen before came from placement around extents waiting to be zeroed
 * (zhelp.c keeps that queue short).  Best fit costs a scan of the free runs
 * per large allocate (p50 4.1 -> 5.9 us on that trace), so it is not the
 * default.  Runs never cross a grow step (bitmap.c).  Under the pool lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define L1_PLACE_BEST_MIN (1ull << 20)

/* First block of the free run that ends at b, not below lo. */
uint64_t l1__bm_run_start(const struct l1_arena *a, uint64_t b, uint64_t lo)
{
	while (b > lo) {
		uint64_t w = (b - 1) >> 6, bit = (b - 1) & 63;
		uint64_t taken = a->bitmap[w] & (bit == 63 ? ~0ull : ((2ull << bit) - 1));
		if (taken) {
			uint64_t top = (w << 6) + 63 - (uint64_t)__builtin_clzll(taken);
			return top + 1 > lo ? top + 1 : lo;
		}
		b = w << 6;
	}
	return lo;
}

/* Start of the smallest free run of at least n blocks inside one step
 * (its length in *run_len), or -1. */
int64_t l1__place_best(struct l1_arena *a, uint64_t n, uint64_t *run_len)
{
	struct l1_hdr *h = a->h;
	uint64_t step = h->grow_step / h->block_size;
	uint64_t limit = l1__blocks_usable(h);
	uint64_t pos = l1__bm_next_zero(a, h->search_hint < limit ? h->search_hint : 0, limit);
	uint64_t best_len = UINT64_MAX;
	int64_t best = -1;
	while (pos < limit) {
		uint64_t step_end = (pos / step + 1) * step;
		uint64_t end = l1__bm_run_end(a, pos, step_end < limit ? step_end : limit);
		uint64_t len = end - pos;
		if (len >= n && len < best_len) {
			best = (int64_t)pos;
			best_len = len;
			if (len == n)
				break;
		}
		pos = l1__bm_next_zero(a, end, limit);
	}
	if (run_len)
		*run_len = best_len;
	return best;
}

static int best_fit_on(void)
{
	static int on = -1;     /* read once; racing first readers agree */
	if (on < 0) {
		const char *e = getenv("L1ARENA_PLACE");
		on = e && !strcmp(e, "best");
	}
	return on;
}

int l1__place_large(struct l1_arena *a, uint64_t nblk, uint32_t count)
{
	uint64_t bs = a->h->block_size, step = a->h->grow_step / bs;
	return nblk * count * bs >= L1_PLACE_BEST_MIN && nblk * count <= step && best_fit_on();
}

int l1__place_claim(struct l1_arena *a, uint64_t nblk, uint32_t count, uint64_t *starts)
{
	uint64_t bs = a->h->block_size, step = a->h->grow_step / bs;
	if (nblk * count * bs < L1_PLACE_BEST_MIN || !best_fit_on())
		return -EAGAIN;         /* first fit */
	int64_t s = nblk * count <= step ? l1__place_best(a, nblk * count, NULL) : -1;
	if (s >= 0) {
		l1__bm_set(a, (uint64_t)s, nblk * count);
		for (uint32_t i = 0; i < count; i++)
			starts[i] = (uint64_t)s + i * nblk;
		return 0;
	}
	for (uint32_t i = 0; i < count; i++) {
		if ((s = l1__place_best(a, nblk, NULL)) < 0) {
			while (i-- > 0)
				l1__bm_clear(a, starts[i], nblk);
			return -ENOMEM;
		}
		l1__bm_set(a, (uint64_t)s, nblk);
		starts[i] = (uint64_t)s;
	}
	return 0;
}
