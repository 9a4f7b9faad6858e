/*
 * check_misuse.c - every public call misused: NULL handles and arguments,
 * freed, stale, foreign and duplicated objects, absurd counts and sizes,
 * calls a read-only or client-less handle may not make.  Each must return
 * its error code with a sentence in l1_last_error(), and change nothing: the
 * usage counters, every record (id, state, holds, key) and a clean memcheck
 * are compared before and after each call.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <signal.h>
#include <libgen.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define MiB (1ull << 20)
#define MAXREC 64

/* The pool every case misuses, and objects in each state. */
struct fixture {
	struct l1_arena *a, *other, *ro, *nc;
	char path[512];
	struct l1_obj mine[2];          /* allocated, unpublished */
	struct l1_obj pub;              /* published as "pk0" */
	struct l1_obj held;             /* published as "pk1", held once by a */
	struct l1_obj freed;            /* freed; its slot not reused */
	struct l1_obj stale;            /* freed; its slot reused by `reused` */
	struct l1_obj reused;
	struct l1_obj foreign;          /* allocated in another pool */
};

static struct fixture F;

static void fx_setup(void)
{
	struct l1_config c;
	struct l1_open_opts o;
	memset(&F, 0, sizeof F);
	l1t_config(&c, "misuse", 8 * MiB);
	ck_assert_int_eq(l1_arena_create(&c, &F.a), 0);
	snprintf(F.path, sizeof F.path, "%s", l1_arena_path(F.a));
	F.other = l1t_create("misuse-other", 8 * MiB);
	ck_assert_int_eq(l1_alloc_bytes(F.other, 4096, 1, &F.foreign), 0);
	ck_assert_int_eq(l1_alloc_bytes(F.a, 4096, 1, &F.stale), 0);
	ck_assert_int_eq(l1_free(F.a, &F.stale, 1), 0);
	ck_assert_int_eq(l1_arena_flush(F.a, 10000), 0);
	ck_assert_int_eq(l1_alloc_bytes(F.a, 8192, 1, &F.reused), 0);
	ck_assert_uint_eq(F.reused.id & 0xffffffff, F.stale.id & 0xffffffff);
	ck_assert_int_eq(l1_alloc_bytes(F.a, 4096, 2, F.mine), 0);
	ck_assert_int_eq(l1_alloc_bytes(F.a, 4096, 1, &F.pub), 0);
	ck_assert_int_eq(l1_publish(F.a, F.pub.id, "pk0"), 0);
	ck_assert_int_eq(l1_alloc_bytes(F.a, 4096, 1, &F.held), 0);
	ck_assert_int_eq(l1_publish(F.a, F.held.id, "pk1"), 0);
	ck_assert_int_eq(l1_hold(F.a, F.held.id, NULL), 0);
	ck_assert_int_eq(l1_alloc_bytes(F.a, 4096, 1, &F.freed), 0);
	ck_assert_int_eq(l1_free(F.a, &F.freed, 1), 0);
	ck_assert_int_eq(l1_arena_flush(F.a, 10000), 0);
	l1_open_opts_init(&o);
	o.pin = L1_PIN_OFF;
	o.readonly = 1;
	ck_assert_int_eq(l1_arena_open(F.path, &o, &F.ro), 0);
	o.readonly = 0;
	o.no_client = 1;
	ck_assert_int_eq(l1_arena_open(F.path, &o, &F.nc), 0);
	l1t_memcheck_clean(F.a);
}

static void fx_teardown(void)
{
	l1_arena_close(F.ro);
	l1_arena_close(F.nc);
	l1t_destroy(F.other);
	l1t_destroy(F.a);
}

/* ---- "nothing changed" ------------------------------------------------- */

struct snap {
	struct l1_usage u, uo;
	uint32_t n;
	struct l1_obj_info rec[MAXREC];
	int clean, clean_other;
};

static void snap_take(struct snap *s)
{
	char rep[2048];
	uint64_t cur = 0;
	memset(s, 0, sizeof *s);
	ck_assert_int_eq(l1_arena_usage(F.a, &s->u), 0);
	ck_assert_int_eq(l1_arena_usage(F.other, &s->uo), 0);
	int n = l1_obj_list(F.a, &cur, s->rec, MAXREC);
	ck_assert_int_ge(n, 0);
	s->n = (uint32_t)n;
	s->clean = l1_arena_memcheck(F.a, 0, rep, sizeof rep);
	s->clean_other = l1_arena_memcheck(F.other, 0, rep, sizeof rep);
}

static void usage_same(const struct l1_usage *x, const struct l1_usage *y, const char *what)
{
#define SAME(f) ck_assert_msg(x->f == y->f, "%s changed " #f ": %llu -> %llu", what, \
			      (unsigned long long)x->f, (unsigned long long)y->f)
	SAME(used_bytes);
	SAME(committed_bytes);
	SAME(dirty_bytes);
	SAME(free_bytes);
	SAME(largest_free_bytes);
	for (int i = 0; i < 5; i++)
		SAME(objects[i]);
	SAME(holds);
	SAME(clients);
	SAME(allocs);
	SAME(frees);
	SAME(ooms);
	SAME(repairs);
	SAME(zeroed_bytes);
#undef SAME
}

static void snap_same(const struct snap *x, const struct snap *y, const char *what)
{
	usage_same(&x->u, &y->u, what);
	usage_same(&x->uo, &y->uo, what);
	ck_assert_msg(x->n == y->n, "%s changed the number of objects", what);
	for (uint32_t i = 0; i < x->n; i++) {
		const struct l1_obj_info *p = &x->rec[i], *q = &y->rec[i];
		ck_assert_msg(p->obj.id == q->obj.id && p->state == q->state &&
			      p->holds == q->holds && p->obj.offset == q->obj.offset &&
			      p->uid == q->uid && p->mode == q->mode &&
			      !strcmp(p->key, q->key),
			      "%s changed object %llu", what, (unsigned long long)p->obj.id);
	}
	ck_assert_msg(y->clean == 0 && y->clean_other == 0, "%s: memcheck no longer clean",
		      what);
}

/* The call must fail with exactly `expect`, say why, and change nothing. */
#define MISUSE(expect, call) do {                                                   \
		struct snap *s0_ = malloc(sizeof *s0_), *s1_ = malloc(sizeof *s1_);  \
		ck_assert(s0_ && s1_);                                                \
		snap_take(s0_);                                                       \
		int r_ = (call);                                                      \
		snap_take(s1_);                                                       \
		ck_assert_msg(r_ == (expect), "%s: %d (%s), expected %d (%s); %s", #call, \
			      r_, l1_strerror(r_), (expect), l1_strerror(expect),     \
			      l1_last_error());                                       \
		if (r_ < 0)                                                           \
			ck_assert_msg(*l1_last_error(), "%s: no sentence", #call);    \
		snap_same(s0_, s1_, #call);                                           \
		free(s0_);                                                            \
		free(s1_);                                                            \
	} while (0)

static struct l1_layout bytes_layout(uint64_t n)
{
	struct l1_layout l;
	l1t_layout_bytes(&l, n);
	return l;
}

/* ---- allocate ---------------------------------------------------------- */

START_TEST(alloc_misuse)
{
	struct l1_obj o[8];
	struct l1_layout l = bytes_layout(4096), bad;
	MISUSE(-EINVAL, l1_alloc(NULL, &l, 1, o));
	MISUSE(-EINVAL, l1_alloc(F.a, NULL, 1, o));
	MISUSE(-EINVAL, l1_alloc(F.a, &l, 1, NULL));
	MISUSE(-EINVAL, l1_alloc(F.a, &l, 0, o));
	MISUSE(-ENOSPC, l1_alloc(F.a, &l, UINT32_MAX, o));
	MISUSE(-ENOSPC, l1_alloc(F.a, &l, 1u << 20, o));
	MISUSE(-EINVAL, l1_alloc_bytes(F.a, 0, 1, o));
	/* larger than the pool: never fits, OUT_OF_MEMORY (as LMCache says) */
	MISUSE(-ENOMEM, l1_alloc_bytes(F.a, UINT64_MAX, 1, o));
	MISUSE(-ENOMEM, l1_alloc_bytes(F.a, 1ull << 62, 1, o));
	MISUSE(-ENOMEM, l1_alloc_bytes(F.a, 9 * MiB, 1, o));
	MISUSE(-EINVAL, l1_alloc_bytes(NULL, 4096, 1, o));
	MISUSE(-EPERM, l1_alloc_bytes(F.ro, 4096, 1, o));
	/* more than is free: all or nothing (only the refusal is counted) */
	struct snap *s0 = malloc(sizeof *s0), *s1 = malloc(sizeof *s1);
	snap_take(s0);
	ck_assert_int_eq(l1_alloc_bytes(F.a, 2 * MiB, 4, o), -ENOMEM);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "out of memory"));
	snap_take(s1);
	ck_assert_uint_eq(s1->u.ooms, s0->u.ooms + 1);
	s1->u.ooms--;
	snap_same(s0, s1, "alloc of more than is free");
	free(s0);
	free(s1);
	memset(&bad, 0, sizeof bad);
	MISUSE(-EINVAL, l1_alloc(F.a, &bad, 1, o));                  /* no tensors */
	bad = l;
	bad.ntensors = L1_MAX_TENSORS + 1;
	MISUSE(-EINVAL, l1_alloc(F.a, &bad, 1, o));
	bad.ntensors = UINT32_MAX;
	MISUSE(-EINVAL, l1_alloc(F.a, &bad, 1, o));
	bad = l;
	bad.t[0].dtype = L1_DTYPE_COUNT;
	MISUSE(-EINVAL, l1_alloc(F.a, &bad, 1, o));
	bad.t[0].dtype = UINT32_MAX;
	MISUSE(-EINVAL, l1_alloc(F.a, &bad, 1, o));
	bad = l;
	bad.t[0].ndim = L1_MAX_DIMS + 1;
	MISUSE(-EINVAL, l1_alloc(F.a, &bad, 1, o));
	bad = l;
	bad.t[0].ndim = 4;
	for (int d = 0; d < 4; d++)
		bad.t[0].shape[d] = 1ull << 20;                     /* 2^80 bytes */
	MISUSE(-EINVAL, l1_alloc(F.a, &bad, 1, o));
	bad.t[0].shape[0] = 0;                                       /* 0 bytes */
	MISUSE(-EINVAL, l1_alloc(F.a, &bad, 1, o));
	/* two tensors whose sum overflows */
	bad = l;
	bad.ntensors = 2;
	bad.t[0].shape[0] = UINT64_MAX - 2;
	bad.t[1] = bad.t[0];
	MISUSE(-EINVAL, l1_alloc(F.a, &bad, 1, o));
}
END_TEST

/* ---- free ---------------------------------------------------------------- */

START_TEST(free_misuse)
{
	struct l1_obj zero, forged, batch[4];
	memset(&zero, 0, sizeof zero);
	MISUSE(-EINVAL, l1_free(NULL, F.mine, 1));
	MISUSE(-EINVAL, l1_free(F.a, NULL, 1));
	MISUSE(0, l1_free(F.a, NULL, 0));                            /* nothing to do */
	MISUSE(0, l1_free(F.a, F.mine, 0));
	MISUSE(-EALREADY, l1_free(F.a, &F.freed, 1));                /* double free */
	MISUSE(-ESTALE, l1_free(F.a, &F.stale, 1));
	MISUSE(-EXDEV, l1_free(F.a, &F.foreign, 1));
	MISUSE(-EXDEV, l1_free(F.a, &zero, 1));                      /* not from alloc */
	forged = F.mine[0];
	forged.id = (forged.id & 0xffffffff) | (uint64_t)0x7777 << 32;   /* future generation */
	MISUSE(-ENOENT, l1_free(F.a, &forged, 1));
	forged.id = (uint64_t)1 << 32 | 0xfffffff0u;                 /* slot past the table */
	MISUSE(-ENOENT, l1_free(F.a, &forged, 1));
	forged.id = F.mine[0].id & 0xffffffff;                       /* generation 0 */
	MISUSE(-ENOENT, l1_free(F.a, &forged, 1));
	/* a bad entry anywhere in a batch: nothing of the batch is freed */
	batch[0] = F.mine[0];
	batch[1] = F.pub;
	batch[2] = F.mine[1];
	batch[3] = F.mine[0];                                        /* duplicate */
	MISUSE(-EINVAL, l1_free(F.a, batch, 4));
	batch[3] = F.stale;
	MISUSE(-ESTALE, l1_free(F.a, batch, 4));
	batch[3] = F.foreign;
	MISUSE(-EXDEV, l1_free(F.a, batch, 4));
	batch[3] = F.freed;
	MISUSE(-EALREADY, l1_free(F.a, batch, 4));
	batch[0] = F.freed;
	batch[3] = F.mine[0];
	MISUSE(-EALREADY, l1_free(F.a, batch, 4));
	/* the same object from the other pool's handle */
	MISUSE(-EXDEV, l1_free(F.other, F.mine, 1));
	MISUSE(-EPERM, l1_free(F.ro, F.mine, 1));
	/* by id */
	uint64_t ids[4] = { F.mine[0].id, F.mine[1].id, F.mine[0].id, 0 };
	MISUSE(-EINVAL, l1_free_ids(NULL, ids, 1));
	MISUSE(-EINVAL, l1_free_ids(F.a, NULL, 2));
	MISUSE(-EINVAL, l1_free_ids(F.a, ids, 3));           /* duplicate */
	MISUSE(-ENOENT, l1_free_ids(F.a, ids + 3, 1));
	ids[2] = UINT64_MAX;
	MISUSE(-ENOENT, l1_free_ids(F.a, ids, 3));
	ids[2] = F.stale.id;
	MISUSE(-ESTALE, l1_free_ids(F.a, ids, 3));
	ids[2] = F.freed.id;
	MISUSE(-EALREADY, l1_free_ids(F.a, ids, 3));
	MISUSE(-EPERM, l1_free_ids(F.ro, ids, 1));
	/* a large batch of one object repeated: refused as a whole */
	static uint64_t many[5000];
	for (int i = 0; i < 5000; i++)
		many[i] = F.mine[i & 1].id;
	MISUSE(-EINVAL, l1_free_ids(F.a, many, 5000));
	static struct l1_obj manyo[5000];
	for (int i = 0; i < 5000; i++)
		manyo[i] = F.mine[i & 1];
	MISUSE(-EINVAL, l1_free(F.a, manyo, 5000));
}
END_TEST

/* ---- publish, get, lookup ------------------------------------------------ */

START_TEST(publish_find_misuse)
{
	char longkey[L1_KEY_MAX + 2];
	struct l1_obj o;
	memset(longkey, 'k', sizeof longkey - 1);
	longkey[sizeof longkey - 1] = 0;
	MISUSE(-EINVAL, l1_publish(NULL, F.mine[0].id, "x"));
	MISUSE(-EINVAL, l1_publish(F.a, F.mine[0].id, longkey));
	MISUSE(-EEXIST, l1_publish(F.a, F.mine[0].id, "pk0"));      /* key taken */
	MISUSE(-EEXIST, l1_publish(F.a, F.pub.id, "again"));        /* already published */
	MISUSE(-EALREADY, l1_publish(F.a, F.freed.id, "x"));
	MISUSE(-ESTALE, l1_publish(F.a, F.stale.id, "x"));
	MISUSE(-ENOENT, l1_publish(F.a, 0, "x"));
	MISUSE(-ENOENT, l1_publish(F.a, UINT64_MAX, "x"));
	MISUSE(-EPERM, l1_publish(F.ro, F.mine[0].id, "x"));
	/* an id from the other pool whose slot is free here */
	MISUSE(-ENOENT, l1_publish(F.other, F.pub.id, "x"));
	MISUSE(-EINVAL, l1_get(NULL, F.pub.id, &o));
	MISUSE(-EINVAL, l1_get(F.a, F.pub.id, NULL));
	MISUSE(-EALREADY, l1_get(F.a, F.freed.id, &o));
	MISUSE(-ESTALE, l1_get(F.a, F.stale.id, &o));
	MISUSE(-ENOENT, l1_get(F.a, 0, &o));
	MISUSE(-ENOENT, l1_get(F.a, UINT64_MAX, &o));
	MISUSE(-EINVAL, l1_lookup(NULL, "pk0", &o));
	MISUSE(-EINVAL, l1_lookup(F.a, "pk0", NULL));
	MISUSE(-EINVAL, l1_lookup(F.a, NULL, &o));
	MISUSE(-EINVAL, l1_lookup(F.a, "", &o));
	MISUSE(-EINVAL, l1_lookup(F.a, longkey, &o));
	MISUSE(-ENOENT, l1_lookup(F.a, "no-such-key", &o));
	MISUSE(-ENOENT, l1_lookup(F.a, "pk", &o));                  /* a prefix */
	MISUSE(-ENOENT, l1_lookup(F.other, "pk0", &o));
	struct l1_obj_info info[4];
	uint64_t cur = 0;
	MISUSE(-EINVAL, l1_obj_info(NULL, F.pub.id, info));
	MISUSE(-EINVAL, l1_obj_info(F.a, F.pub.id, NULL));
	MISUSE(-ENOENT, l1_obj_info(F.a, F.freed.id, info));
	MISUSE(-ENOENT, l1_obj_info(F.a, F.stale.id, info));
	MISUSE(-ENOENT, l1_obj_info(F.a, UINT64_MAX, info));
	MISUSE(-EINVAL, l1_obj_list(NULL, &cur, info, 4));
	MISUSE(-EINVAL, l1_obj_list(F.a, NULL, info, 4));
	MISUSE(-EINVAL, l1_obj_list(F.a, &cur, NULL, 4));
	MISUSE(0, l1_obj_list(F.a, &cur, NULL, 0));
	cur = UINT64_MAX;
	MISUSE(0, l1_obj_list(F.a, &cur, info, 4));                 /* past the end */
	MISUSE(-EINVAL, l1_obj_chmod(NULL, F.pub.id, 0, 0, 0600));
	MISUSE(-EINVAL, l1_obj_chmod(F.a, F.pub.id, 0, 0, 070000));
	MISUSE(-EINVAL, l1_obj_chmod(F.a, F.pub.id, 0, 0, UINT32_MAX));
	MISUSE(-EALREADY, l1_obj_chmod(F.a, F.freed.id, 0, 0, 0600));
	MISUSE(-ESTALE, l1_obj_chmod(F.a, F.stale.id, 0, 0, 0600));
	MISUSE(-EPERM, l1_obj_chmod(F.ro, F.pub.id, 0, 0, 0600));
	struct l1_layout l;
	MISUSE(-EINVAL, l1_arena_layout(NULL, 0, &l));
	MISUSE(-EINVAL, l1_arena_layout(F.a, 0, NULL));
	MISUSE(-ENOENT, l1_arena_layout(F.a, 5000, &l));
	MISUSE(-ENOENT, l1_arena_layout(F.a, UINT32_MAX, &l));
}
END_TEST

/* ---- holds --------------------------------------------------------------- */

START_TEST(hold_misuse)
{
	struct l1_obj o;
	MISUSE(-EINVAL, l1_hold(NULL, F.pub.id, &o));
	MISUSE(-EALREADY, l1_hold(F.a, F.freed.id, &o));
	MISUSE(-ESTALE, l1_hold(F.a, F.stale.id, &o));
	MISUSE(-ENOENT, l1_hold(F.a, UINT64_MAX, &o));
	MISUSE(-ENOENT, l1_hold(F.a, 0, &o));
	MISUSE(-EINVAL, l1_hold(F.nc, F.pub.id, &o));               /* no client slot */
	MISUSE(-EINVAL, l1_hold_key(F.nc, "pk0", &o));
	MISUSE(-EPERM, l1_hold(F.ro, F.pub.id, &o));               /* read-only: through the view */
	MISUSE(-EPERM, l1_hold_key(F.ro, "pk0", &o));
	MISUSE(-EINVAL, l1_release(F.ro, F.pub.id));               /* holds nothing */
	MISUSE(-EINVAL, l1_hold_key(NULL, "pk0", &o));
	MISUSE(-EINVAL, l1_hold_key(F.a, NULL, &o));
	MISUSE(-EINVAL, l1_hold_key(F.a, "", &o));
	MISUSE(-ENOENT, l1_hold_key(F.a, "nope", &o));
	MISUSE(-EINVAL, l1_release(NULL, F.held.id));
	MISUSE(-ENOENT, l1_release(F.a, F.pub.id));                 /* not held */
	MISUSE(-ENOENT, l1_release(F.a, F.mine[0].id));
	MISUSE(-EALREADY, l1_release(F.a, F.freed.id));
	MISUSE(-ESTALE, l1_release(F.a, F.stale.id));
	MISUSE(-ENOENT, l1_release(F.a, UINT64_MAX));
	MISUSE(-EINVAL, l1_release(F.nc, F.held.id));
	MISUSE(-ENOENT, l1_release(F.other, F.held.id));
	/* a second handle of this process is another client: it holds nothing */
	struct l1_arena *b;
	ck_assert_int_eq(l1_arena_open(F.path, NULL, &b), 0);
	MISUSE(-ENOENT, l1_release(b, F.held.id));
	l1_arena_close(b);
	/* freeing a held object dooms it; holding it then is refused */
	ck_assert_int_eq(l1_free(F.a, &F.held, 1), 0);
	MISUSE(-EALREADY, l1_hold(F.a, F.held.id, &o));
	MISUSE(-ENOENT, l1_hold_key(F.a, "pk1", &o));
	MISUSE(-EALREADY, l1_free(F.a, &F.held, 1));
	MISUSE(-EALREADY, l1_get(F.a, F.held.id, &o));
	ck_assert_int_eq(l1_release(F.a, F.held.id), 0);            /* the last hold */
	ck_assert_int_eq(l1_arena_flush(F.a, 10000), 0);
	MISUSE(-EALREADY, l1_release(F.a, F.held.id));
}
END_TEST

/* ---- pools, usage, maintenance ------------------------------------------- */

START_TEST(pool_misuse)
{
	struct l1_usage u;
	struct l1_vm_space v;
	struct l1_client_info ci[2];
	struct l1_range rg[2];
	char rep[64];
	uint64_t used = 7, total = 7;
	l1_get_memory_usage(NULL, &used, &total);
	ck_assert_uint_eq(used, 7);
	l1_get_memory_usage(F.a, NULL, NULL);
	MISUSE(-EINVAL, l1_arena_usage(NULL, &u));
	MISUSE(-EINVAL, l1_arena_usage(F.a, NULL));
	MISUSE(-EINVAL, l1_get_vm_space(NULL, &v));
	MISUSE(-EINVAL, l1_get_vm_space(F.a, NULL));
	MISUSE(-EINVAL, l1_arena_pinned_ranges(NULL, rg, 2));
	MISUSE(0, l1_arena_pinned_ranges(F.a, NULL, 0));
	MISUSE(-EINVAL, l1_arena_clients(NULL, ci, 2));
	MISUSE(-EINVAL, l1_arena_clients(F.a, NULL, 2));
	MISUSE(0, l1_arena_clients(F.a, NULL, 0));
	MISUSE(-EINVAL, l1_arena_gc(NULL, NULL));
	MISUSE(-EPERM, l1_arena_gc(F.ro, NULL));
	MISUSE(-EINVAL, l1_arena_flush(NULL, 10));
	MISUSE(0, l1_arena_flush(F.a, 0));
	MISUSE(0, l1_arena_flush(F.a, -1));                         /* nothing dirty */
	MISUSE(-EINVAL, l1_arena_memcheck(NULL, 0, rep, sizeof rep));
	MISUSE(-EINVAL, l1_arena_memcheck(NULL, 1, NULL, 0));
	MISUSE(0, l1_arena_memcheck(F.a, 0, NULL, 0));
	MISUSE(0, l1_arena_memcheck(F.a, 0, rep, 1));               /* a tiny report */
	MISUSE(0, l1_arena_memcheck(F.a, 1, rep, sizeof rep));      /* clean: no repair */
	MISUSE(-EPERM, l1_arena_memcheck(F.ro, 1, rep, sizeof rep));
	struct l1_obj o;
	MISUSE(-EINVAL, l1_open_path(NULL, "/x", &o));
	MISUSE(-EINVAL, l1_open_path(F.a, NULL, &o));
	MISUSE(-EINVAL, l1_open_path(F.a, "/x", NULL));
	MISUSE(-ENOENT, l1_open_path(F.a, "/no/such/view/objects/1", &o));
	MISUSE(-EINVAL, l1_open_path(F.a, F.path, &o));             /* not a view file */
	ck_assert_ptr_null(l1_arena_path(NULL));
	l1_arena_close(NULL);
}
END_TEST

/* Creating and opening with absurd arguments leaves no file behind. */
START_TEST(create_open_misuse)
{
	struct l1_config c;
	struct l1_arena *a = (struct l1_arena *)(uintptr_t)1;
	char longp[L1_PATH_MAX + 16];
	const char *p = l1t_path("misuse-create");
	setenv("L1ARENA_PATH", p, 1);          /* NULL paths must not reach a real pool */
	ck_assert_int_eq(l1_arena_create(NULL, &a), -EINVAL);
	l1t_config(&c, "misuse-create", 8 * MiB);
	ck_assert_int_eq(l1_arena_create(&c, NULL), -EINVAL);
	struct { uint64_t *f; uint64_t v; } bad[] = {
		{ &c.size_bytes, 0 }, { &c.size_bytes, UINT64_MAX }, { &c.size_bytes, 1ull << 51 },
		{ &c.align_bytes, 3 }, { &c.align_bytes, 32 }, { &c.align_bytes, 1ull << 40 },
		{ &c.hugepage_size, 4096 }, { &c.hugepage_size, 3 << 20 },
		{ &c.grow_step_bytes, 12345 }, { &c.grow_step_bytes, 1ull << 40 },
		{ &c.max_objects, 1ull << 40 }, { &c.init_size_bytes, 4096 },
	};
	for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct l1_config k = c;
		*(uint64_t *)((char *)&k + ((char *)bad[i].f - (char *)&c)) = bad[i].v;
		a = (struct l1_arena *)(uintptr_t)1;
		ck_assert_msg(l1_arena_create(&k, &a) == -EINVAL, "bad config %u accepted", i);
		ck_assert_ptr_null(a);
		ck_assert(*l1_last_error());
		ck_assert_int_eq(access(c.path, F_OK), -1);
	}
	struct l1_config k = c;
	k.version = 99;
	ck_assert_int_eq(l1_arena_create(&k, &a), -EINVAL);
	k = c;
	k.zero_method = 99;
	ck_assert_int_eq(l1_arena_create(&k, &a), -EINVAL);
	k = c;
	k.pin = -1;
	ck_assert_int_eq(l1_arena_create(&k, &a), -EINVAL);
	k = c;
	k.mode = 01777;
	ck_assert_int_eq(l1_arena_create(&k, &a), -EINVAL);
	k = c;
	k.path = "relative/pool";
	ck_assert_int_eq(l1_arena_create(&k, &a), -EINVAL);
	memset(longp, 'p', sizeof longp - 1);
	longp[0] = '/';
	longp[sizeof longp - 1] = 0;
	k.path = longp;
	ck_assert_int_eq(l1_arena_create(&k, &a), -EINVAL);
	k = c;
	k.path = "/no/such/dir/pool";
	k.allow_shm = 0;
	ck_assert_int_lt(l1_arena_create(&k, &a), 0);
	ck_assert_int_eq(access(c.path, F_OK), -1);
	/* open */
	ck_assert_int_eq(l1_arena_open(c.path, NULL, NULL), -EINVAL);
	ck_assert_int_eq(l1_arena_open(c.path, NULL, &a), -ENOENT);
	ck_assert_ptr_null(a);
	ck_assert_int_eq(l1_arena_open(NULL, NULL, &a), -ENOENT);  /* $L1ARENA_PATH */
	ck_assert_int_eq(l1_arena_open(longp, NULL, &a), -EINVAL);
	ck_assert_int_lt(l1_arena_open("/", NULL, &a), 0);
	ck_assert_int_lt(l1_arena_open("", NULL, &a), 0);
	ck_assert_int_eq(l1_arena_destroy(c.path, 0), -ENOENT);
	ck_assert_int_eq(l1_arena_destroy(NULL, 0), -ENOENT);
	/* a pool in use: destroy without force refuses and keeps it */
	ck_assert_int_eq(l1_arena_destroy(F.path, 0), -EBUSY);
	ck_assert_int_eq(access(F.path, F_OK), 0);
	unsetenv("L1ARENA_PATH");
}
END_TEST


/* ---- read-only handles, inherited handles, other users --------------------- */

static void segv_exit(int sig)
{
	(void)sig;
	_exit(42);
}

/* A read-only handle reads without the pool lock: get, lookup, info, list
 * and usage work and return what a read-write handle sees, and change
 * nothing; memcheck, which needs the lock, is refused with -EPERM. */
START_TEST(readonly_reads)
{
	struct l1_obj o, w;
	struct l1_obj_info inf[MAXREC];
	struct l1_usage u;
	char rep[64];
	MISUSE(0, l1_lookup(F.ro, "pk0", &o));
	ck_assert_int_eq(l1_lookup(F.a, "pk0", &w), 0);
	ck_assert_uint_eq(o.id, w.id);
	ck_assert_uint_eq(o.offset, w.offset);
	ck_assert_int_eq(memcmp(o.ptr, w.ptr, o.size), 0);
	MISUSE(0, l1_get(F.ro, F.mine[0].id, &o));
	ck_assert_uint_eq(o.offset, F.mine[0].offset);
	MISUSE(-ENOENT, l1_lookup(F.ro, "nope", &o));
	MISUSE(-ESTALE, l1_get(F.ro, F.stale.id, &o));
	MISUSE(-EALREADY, l1_get(F.ro, F.freed.id, &o));
	MISUSE(0, l1_obj_info(F.ro, F.pub.id, &inf[0]));
	ck_assert_str_eq(inf[0].key, "pk0");
	uint64_t cur = 0;
	int n = l1_obj_list(F.ro, &cur, inf, MAXREC);
	ck_assert_int_eq(n, 5);                  /* reused, mine x2, pub, held */
	MISUSE(0, l1_arena_usage(F.ro, &u));
	ck_assert_uint_eq(u.objects[L1_STATE_PUBLISHED], 2);
	MISUSE(-EPERM, l1_arena_memcheck(F.ro, 0, rep, sizeof rep));
	MISUSE(0, l1_arena_flush(F.ro, 0));                         /* flush only waits */
	/* the mapping itself is PROT_READ: a write through it would fault */
	struct l1_vm_space v;
	ck_assert_int_eq(l1_get_vm_space(F.ro, &v), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct sigaction sa = { .sa_handler = segv_exit };
		sigaction(SIGSEGV, &sa, NULL);  /* ours, also under ASan */
		((volatile char *)o.ptr)[0] = 1;
		_exit(0);
	}
	ck_assert_int_eq(l1t_wait(pid), 42);
}
END_TEST

/* Every call on a handle inherited across fork is refused in the child
 * (-EBADF, with a sentence), and the parent's pool is as it was. */
START_TEST(fork_refused)
{
	struct snap *s0 = malloc(sizeof *s0), *s1 = malloc(sizeof *s1);
	snap_take(s0);
	pid_t pid = fork();
	if (pid == 0) {
		struct l1_obj o[2];
		struct l1_obj_info inf;
		struct l1_usage u;
		struct l1_vm_space v;
		struct l1_layout l;
		uint64_t cur = 0, id = F.mine[0].id;
		char rep[64];
		int bad = 0;
#define REFUSED(call) do {                                                          \
		int r_ = (call);                                                      \
		if (r_ != -EBADF || !strstr(l1_last_error(), "fork")) {               \
			fprintf(stderr, "child: %s: %d (%s)\n", #call, r_, l1_last_error()); \
			bad++;                                                        \
		}                                                                     \
	} while (0)
		REFUSED(l1_alloc_bytes(F.a, 4096, 1, o));
		REFUSED(l1_free(F.a, F.mine, 1));
		REFUSED(l1_free_ids(F.a, &id, 1));
		REFUSED(l1_publish(F.a, F.mine[1].id, "child"));
		REFUSED(l1_lookup(F.a, "pk0", o));
		REFUSED(l1_get(F.a, F.pub.id, o));
		REFUSED(l1_hold(F.a, F.pub.id, o));
		REFUSED(l1_hold_key(F.a, "pk0", o));
		REFUSED(l1_release(F.a, F.held.id));
		REFUSED(l1_obj_info(F.a, F.pub.id, &inf));
		REFUSED(l1_obj_list(F.a, &cur, &inf, 1));
		REFUSED(l1_obj_chmod(F.a, F.mine[0].id, 0, 0, 0644));
		REFUSED(l1_arena_usage(F.a, &u));
		REFUSED(l1_get_vm_space(F.a, &v));
		REFUSED(l1_arena_layout(F.a, 0, &l));
		REFUSED(l1_arena_clients(F.a, NULL, 0));
		REFUSED(l1_arena_pinned_ranges(F.a, NULL, 0));
		REFUSED(l1_arena_gc(F.a, NULL));
		REFUSED(l1_arena_flush(F.a, 0));
		REFUSED(l1_arena_memcheck(F.a, 1, rep, sizeof rep));
		REFUSED(l1_open_path(F.a, "/x", o));
		REFUSED(l1_lookup(F.ro, "pk0", o));
#undef REFUSED
		l1_arena_close(F.a);            /* allowed: unmaps the child's copy only */
		_exit(bad);
	}
	ck_assert_int_eq(l1t_wait(pid), 0);
	snap_take(s1);
	snap_same(s0, s1, "a child's calls on an inherited handle");
	struct l1_obj o;
	ck_assert_int_eq(l1_hold(F.a, F.pub.id, &o), 0);     /* the parent's handle works */
	ck_assert_int_eq(l1_release(F.a, F.pub.id), 0);
	free(s0);
	free(s1);
}
END_TEST

/* For the tests that drop to user nobody (root only; 0 if they may run):
 * lets others enter the directory of path (mode |= 0111 for others and
 * group) and says where to put back its mode. */
static int nobody_may_enter(const char *test, const char *path, char *dir, size_t len,
			    mode_t *was)
{
	char tmp[512];
	struct stat st;
	if (geteuid() != 0) {
		printf("%s: skipped: needs root to drop to user nobody\n", test);
		return -1;
	}
	snprintf(tmp, sizeof tmp, "%s", path);
	snprintf(dir, len, "%s", dirname(tmp));
	ck_assert_int_eq(stat(dir, &st), 0);
	*was = st.st_mode & 07777;
	ck_assert_int_eq(chmod(dir, *was | 0011), 0);
	return 0;
}

/* The library's accident checks, from a process of another user that can
 * open the pool file: it may not free, publish or chmod root's objects, nor
 * look up, get or hold those its mode does not let it read (mode 0600), and
 * it may use its own.  A library that let any uid do so fails here. */
START_TEST(other_uid_refused)
{
	if (L1T_TSAN) {
		fprintf(stderr, "other_uid_refused: skipped under ThreadSanitizer (its child "
			"starts threads after fork); the plain and ASan passes run it\n");
		return;
	}
	char dir[512];
	mode_t was;
	if (nobody_may_enter("other_uid_refused", F.path, dir, sizeof dir, &was))
		return;
	ck_assert_int_eq(chmod(F.path, 0666), 0);       /* and open the file; records stay 0600 */
	struct snap *s0 = malloc(sizeof *s0), *s1 = malloc(sizeof *s1);
	snap_take(s0);
	pid_t pid = fork();
	if (pid == 0) {
		struct l1_open_opts op;
		struct l1_arena *b;
		struct l1_obj o, mine;
		uint64_t id = F.mine[0].id;
		int bad = 0;
		if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
			_exit(90);
		l1_open_opts_init(&op);
		op.pin = L1_PIN_OFF;
		if (l1_arena_open(F.path, &op, &b))
			_exit(91);
#define EXPECT(want, call) do {                                                      \
		int r_ = (call);                                                      \
		if (r_ != (want) || (r_ && !*l1_last_error())) {                      \
			fprintf(stderr, "nobody: %s: %d (%s)\n", #call, r_, l1_last_error()); \
			bad++;                                                        \
		}                                                                     \
	} while (0)
		EXPECT(-EPERM, l1_free(b, F.mine, 1));
		EXPECT(-EPERM, l1_free_ids(b, &id, 1));
		EXPECT(-EPERM, l1_publish(b, F.mine[1].id, "stolen"));
		EXPECT(-EPERM, l1_obj_chmod(b, F.mine[0].id, 65534, 65534, 0666));
		EXPECT(-EACCES, l1_lookup(b, "pk0", &o));
		EXPECT(-EACCES, l1_get(b, F.pub.id, &o));
		EXPECT(-EACCES, l1_hold(b, F.pub.id, &o));
		EXPECT(-EACCES, l1_hold_key(b, "pk0", &o));
		/* its own objects are its own */
		EXPECT(0, l1_alloc_bytes(b, 4096, 1, &mine));
		EXPECT(0, l1_publish(b, mine.id, "nobody's"));
		EXPECT(0, l1_hold_key(b, "nobody's", &o));
		EXPECT(0, l1_release(b, mine.id));
		EXPECT(0, l1_free(b, &mine, 1));
		EXPECT(0, l1_arena_flush(b, 10000));
#undef EXPECT
		l1_arena_close(b);
		_exit(bad);
	}
	int st = l1t_wait(pid);
	chmod(dir, was);
	chmod(F.path, 0600);
	ck_assert_msg(st == 0, "the child as nobody: status %d (see its lines above)", st);
	snap_take(s1);
	s1->u.allocs--;         /* nobody's own object came and went */
	s1->u.frees--;
	s1->u.zeroed_bytes = s0->u.zeroed_bytes;
	snap_same(s0, s1, "nobody's calls on root's objects");
	free(s0);
	free(s1);
}
END_TEST

/* The pool's group reads (pool mode 0640): a member who is not the owner
 * cannot attach read-write (the file says so), attaches read-only, finds
 * and reads the owner's objects (they take the pool's group), and every
 * write call is refused with -EPERM; the pool is unchanged. */
START_TEST(group_reader_read_only)
{
	struct l1_config c;
	struct l1_arena *owner, *w;
	struct l1_obj o;
	char dir[512];
	mode_t was;
	l1t_config(&c, "group", 8 * MiB);
	if (nobody_may_enter("group_reader_read_only", c.path, dir, sizeof dir, &was))
		return;
	c.mode = 0640;
	ck_assert_int_eq(l1_arena_create(&c, &owner), 0);
	const char *path = l1_arena_path(owner);
	ck_assert_int_eq(chown(path, 0, 65534), 0);     /* the readers' group */
	ck_assert_int_eq(l1_arena_open(path, NULL, &w), 0);
	ck_assert_int_eq(l1_alloc_bytes(w, 4096, 1, &o), 0);
	memset(o.ptr, 0x5a, 4096);
	ck_assert_int_eq(l1_publish(w, o.id, "for-the-group"), 0);
	pid_t pid = fork();
	if (pid == 0) {
		struct l1_open_opts op;
		struct l1_arena *b;
		struct l1_obj g, x;
		gid_t grp = 65534;
		int bad = 0;
		if (setgroups(1, &grp) || setgid(65534) || setuid(65534))
			_exit(90);
		l1_open_opts_init(&op);
		op.pin = L1_PIN_OFF;
		if (l1_arena_open(path, &op, &b) != -EACCES ||
		    !strstr(l1_last_error(), "can attach read-only"))
			bad |= 1;
		op.readonly = 1;
		if (l1_arena_open(path, &op, &b))
			_exit(91);
		if (l1_lookup(b, "for-the-group", &g) || ((unsigned char *)g.ptr)[4095] != 0x5a)
			bad |= 2;
		if (l1_alloc_bytes(b, 4096, 1, &x) != -EPERM || l1_free(b, &g, 1) != -EPERM ||
		    l1_publish(b, g.id, "k") != -EPERM || l1_hold(b, g.id, &x) != -EPERM ||
		    l1_arena_gc(b, NULL) != -EPERM || l1_obj_chmod(b, g.id, 0, 0, 0644) != -EPERM)
			bad |= 4;
		l1_arena_close(b);
		_exit(bad);
	}
	int st = l1t_wait(pid);
	chmod(dir, was);
	ck_assert_msg(st == 0, "the group reader: status %d", st);
	struct l1_obj_info inf;
	ck_assert_int_eq(l1_obj_info(w, o.id, &inf), 0);
	ck_assert_uint_eq(inf.gid, 65534);
	ck_assert_uint_eq(inf.state, L1_STATE_PUBLISHED);
	ck_assert_uint_eq(inf.holds, 0);
	l1t_memcheck_clean(w);
	l1_arena_close(w);
	l1t_destroy(owner);
}
END_TEST

/* ---- values, layouts, sizes ------------------------------------------------ */

START_TEST(value_misuse)
{
	struct l1_layout l, ok = bytes_layout(10);
	char buf[8];
	uint64_t v = 7;
	ck_assert_ptr_nonnull(l1_strerror(0));
	ck_assert_ptr_nonnull(l1_strerror(-99999));
	ck_assert_ptr_nonnull(l1_strerror(INT32_MIN));
	ck_assert_ptr_nonnull(l1_strerror(12345));
	ck_assert_uint_eq(l1_dtype_size(UINT32_MAX), 0);
	ck_assert_str_eq(l1_dtype_name(UINT32_MAX), "invalid");
	ck_assert_uint_eq(l1_dtype_parse(NULL), L1_DTYPE_INVALID);
	ck_assert_uint_eq(l1_dtype_parse(""), L1_DTYPE_INVALID);
	ck_assert_uint_eq(l1_dtype_parse("torch."), L1_DTYPE_INVALID);
	ck_assert_int_eq(l1_layout_bytes(NULL, &v), -EINVAL);
	ck_assert_uint_eq(v, 7);
	ck_assert_int_eq(l1_layout_tensor_offset(NULL, 0, &v), -EINVAL);
	ck_assert_int_eq(l1_layout_tensor_offset(&ok, 1, &v), -EINVAL);
	ck_assert_int_eq(l1_layout_tensor_offset(&ok, UINT32_MAX, &v), -EINVAL);
	ck_assert_int_eq(l1_layout_format(&ok, NULL, 10), -EINVAL);
	ck_assert_int_eq(l1_layout_format(&ok, buf, 0), -EINVAL);
	ck_assert_int_ge(l1_layout_format(&ok, buf, 1), 0);
	ck_assert_str_eq(buf, "");
	ck_assert_int_ge(l1_layout_format(&ok, buf, sizeof buf), 0);  /* truncated */
	ck_assert_uint_lt(strlen(buf), sizeof buf);
	struct l1_layout junk;
	memset(&junk, 0xff, sizeof junk);
	char big[512];
	ck_assert_int_ge(l1_layout_format(&junk, big, sizeof big), 0);
	ck_assert_int_eq(l1_layout_bytes(&junk, NULL), -EINVAL);
	static const char *badtext[] = {
		"", "[", "]", "[]", "[2,", "[2]", "[2]:", "[2]:fp17", "[-1]:fp16", "[2]:fp16;[",
		"[99999999999999999999]:fp16", "[1,2,3,4,5,6,7,8,9]:fp16",
		"[1]:fp16;[1]:fp16;[1]:fp16;[1]:fp16;[1]:fp16", "[0]:fp16",
		"[4294967296,4294967296]:fp32", "fp16", "[2]:fp16x",
		"[1]:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	for (unsigned i = 0; i < sizeof badtext / sizeof badtext[0]; i++)
		ck_assert_msg(l1_layout_parse(badtext[i], &l) == -EINVAL, "'%s' parsed",
			      badtext[i]);
	ck_assert_int_eq(l1_layout_parse(NULL, &l), -EINVAL);
	ck_assert_int_eq(l1_layout_parse("[2]:fp16", NULL), -EINVAL);
	static const char *badsize[] = {
		"", "abc", "1Z", "-1", "-1G", "1.5.5G", "99999999999999999999999T", "1e400",
		"0.5", "1GG", " ", "nan", "inf",
	};
	for (unsigned i = 0; i < sizeof badsize / sizeof badsize[0]; i++) {
		v = 7;
		ck_assert_msg(l1_parse_size(badsize[i], &v) == -EINVAL, "'%s' parsed", badsize[i]);
		ck_assert_uint_eq(v, 7);
	}
	ck_assert_int_eq(l1_parse_size(NULL, &v), -EINVAL);
	ck_assert_int_eq(l1_parse_size("1G", NULL), -EINVAL);
	ck_assert_int_eq(l1_config_validate(NULL), -EINVAL);
	l1_config_init(NULL);
	l1_open_opts_init(NULL);
	char msg[64];
	ck_assert_int_eq(l1_setup_hugepages(12345, 1, "/nonexistent", msg, sizeof msg), -EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("misuse");
	TCase *t = tcase_create("objects");
	tcase_add_checked_fixture(t, fx_setup, fx_teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, alloc_misuse);
	tcase_add_test(t, free_misuse);
	tcase_add_test(t, publish_find_misuse);
	tcase_add_test(t, hold_misuse);
	tcase_add_test(t, pool_misuse);
	tcase_add_test(t, create_open_misuse);
	tcase_add_test(t, readonly_reads);
	tcase_add_test(t, fork_refused);
	tcase_add_test(t, other_uid_refused);
	tcase_add_test(t, group_reader_read_only);
	suite_add_tcase(s, t);
	t = tcase_create("values");
	tcase_add_test(t, value_misuse);
	suite_add_tcase(s, t);
	return l1t_run_suite(s);
}
