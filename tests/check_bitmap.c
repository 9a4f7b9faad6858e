/*
 * check_bitmap.c - the bitmap against a plain-array reference model: every
 * find answers what a dumb scan over a bool array answers (first fit from a
 * start, inside one grow step), set/clear keep the summary level true, and
 * randomised sequences of claims and releases never diverge.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testutil.h"

struct fixture {
	struct l1_arena a;
	struct l1_hdr h;
	uint8_t *model;
};

static void fx_init(struct fixture *f, uint64_t nblocks, uint64_t step_blocks)
{
	memset(f, 0, sizeof *f);
	f->h.block_size = 4096;
	f->h.nblocks = nblocks;
	f->h.grow_step = step_blocks * 4096;
	f->h.bitmap_words = (nblocks + 63) / 64;
	f->h.summary_words = (f->h.bitmap_words + 63) / 64;
	f->a.h = &f->h;
	f->a.bitmap = calloc(f->h.bitmap_words, 8);
	f->a.summary = calloc(f->h.summary_words, 8);
	f->model = calloc(nblocks, 1);
}

static void fx_free(struct fixture *f)
{
	free(f->a.bitmap);
	free(f->a.summary);
	free(f->model);
}

static int64_t model_find(struct fixture *f, uint64_t n, uint64_t from, uint64_t limit)
{
	uint64_t step = f->h.grow_step / f->h.block_size;
	if (n == 0 || n > step)
		return -1;
	for (uint64_t s = from; s + n <= limit; s++) {
		if (s / step != (s + n - 1) / step)
			continue;
		uint64_t i;
		for (i = 0; i < n && !f->model[s + i]; i++)
			;
		if (i == n)
			return (int64_t)s;
	}
	return -1;
}

static void model_apply(struct fixture *f, uint64_t s, uint64_t n, int v)
{
	memset(f->model + s, v, n);
	if (v)
		l1__bm_set(&f->a, s, n);
	else
		l1__bm_clear(&f->a, s, n);
}

static void assert_same(struct fixture *f)
{
	for (uint64_t i = 0; i < f->h.nblocks; i++) {
		int bit = !!(f->a.bitmap[i >> 6] & (1ull << (i & 63)));
		ck_assert_msg(bit == f->model[i], "block %llu: bitmap %d model %d",
			      (unsigned long long)i, bit, f->model[i]);
	}
	for (uint64_t w = 0; w < f->h.bitmap_words; w++) {
		int full = f->a.bitmap[w] == ~0ull;
		int sum = !!(f->a.summary[w >> 6] & (1ull << (w & 63)));
		ck_assert_msg(full == sum, "summary of word %llu", (unsigned long long)w);
	}
}

START_TEST(find_empty_and_full)
{
	struct fixture f;
	fx_init(&f, 10000, 10000);
	ck_assert_int_eq(l1__bm_find(&f.a, 1, 0, 10000), 0);
	ck_assert_int_eq(l1__bm_find(&f.a, 10000, 0, 10000), 0);
	ck_assert_int_eq(l1__bm_find(&f.a, 10001, 0, 10000), -1);
	model_apply(&f, 0, 10000, 1);
	assert_same(&f);
	ck_assert_int_eq(l1__bm_find(&f.a, 1, 0, 10000), -1);
	model_apply(&f, 9999, 1, 0);
	ck_assert_int_eq(l1__bm_find(&f.a, 1, 0, 10000), 9999);
	ck_assert_int_eq(l1__bm_find(&f.a, 2, 0, 10000), -1);
	fx_free(&f);
}
END_TEST

START_TEST(runs_across_words)
{
	struct fixture f;
	fx_init(&f, 512, 512);
	model_apply(&f, 0, 60, 1);
	model_apply(&f, 70, 200, 1);
	/* 10 free blocks at 60..69 straddle a word boundary */
	ck_assert_int_eq(l1__bm_find(&f.a, 10, 0, 512), 60);
	ck_assert_int_eq(l1__bm_find(&f.a, 11, 0, 512), 270);
	ck_assert_int_eq(l1__bm_find(&f.a, 242, 0, 512), 270);
	ck_assert_int_eq(l1__bm_find(&f.a, 243, 0, 512), -1);
	assert_same(&f);
	fx_free(&f);
}
END_TEST

START_TEST(never_crosses_step)
{
	struct fixture f;
	fx_init(&f, 1024, 256);
	ck_assert_int_eq(l1__bm_find(&f.a, 100, 200, 1024), 256);
	ck_assert_int_eq(l1__bm_find(&f.a, 257, 0, 1024), -1);
	ck_assert_int_eq(l1__bm_find(&f.a, 256, 1, 1024), 256);
	ck_assert_int_eq(l1__bm_find(&f.a, 10, 0, 250), 0);
	ck_assert_int_eq(l1__bm_find(&f.a, 10, 250, 260), -1);
	ck_assert_int_eq(l1__bm_find(&f.a, 10, 245, 260), 245);
	fx_free(&f);
}
END_TEST

START_TEST(random_against_model)
{
	struct fixture f;
	uint64_t nb = 20000, step = 4096;
	fx_init(&f, nb, step);
	srandom(1234 + (unsigned)_i);
	struct { uint64_t s, n; } live[4096];
	int nlive = 0;
	for (int it = 0; it < 20000; it++) {
		if (nlive < 4096 && (random() % 3 || nlive == 0)) {
			uint64_t n = 1 + (uint64_t)(random() % (random() % 4 ? 8 : 300));
			uint64_t from = (uint64_t)random() % nb;
			uint64_t limit = from + (uint64_t)random() % (nb - from + 1);
			int64_t got = l1__bm_find(&f.a, n, from, limit);
			int64_t want = model_find(&f, n, from, limit);
			ck_assert_msg(got == want, "find(%llu, %llu, %llu): got %lld want %lld",
				      (unsigned long long)n, (unsigned long long)from,
				      (unsigned long long)limit, (long long)got, (long long)want);
			if (got >= 0) {
				model_apply(&f, (uint64_t)got, n, 1);
				live[nlive].s = (uint64_t)got;
				live[nlive++].n = n;
			}
		} else {
			int k = (int)(random() % nlive);
			model_apply(&f, live[k].s, live[k].n, 0);
			live[k] = live[--nlive];
		}
		if (it % 1000 == 0)
			assert_same(&f);
	}
	assert_same(&f);
	uint64_t largest = l1__bm_largest_free(&f.a, nb), run = 0, best = 0;
	for (uint64_t i = 0; i < nb; i++) {
		if (i % step == 0)
			run = 0;
		run = f.model[i] ? 0 : run + 1;
		best = run > best ? run : best;
	}
	ck_assert_uint_eq(largest, best * 4096);
	fx_free(&f);
}
END_TEST

START_TEST(summary_rebuild)
{
	struct fixture f;
	fx_init(&f, 64 * 70, 64 * 70);
	model_apply(&f, 0, 64 * 65, 1);
	memset(f.a.summary, 0, f.h.summary_words * 8);
	l1__bm_rebuild_summary(&f.a);
	assert_same(&f);
	ck_assert_int_eq(l1__bm_find(&f.a, 64, 0, 64 * 70), 64 * 65);
	fx_free(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bitmap");
	TCase *t = tcase_create("find");
	tcase_add_test(t, find_empty_and_full);
	tcase_add_test(t, runs_across_words);
	tcase_add_test(t, never_crosses_step);
	suite_add_tcase(s, t);
	t = tcase_create("model");
	tcase_set_timeout(t, 120);
	tcase_add_loop_test(t, random_against_model, 0, 4);
	tcase_add_test(t, summary_rebuild);
	suite_add_tcase(s, t);
	return l1t_run_suite(s);
}
