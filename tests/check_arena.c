/*
 * check_arena.c - the pool API in one process: create/open/destroy and the
 * refusals (existing pool, missing pool, bad magic, other version,
 * truncated file), allocate all-or-nothing, argument errors, free with its
 * detections (double, stale, foreign, duplicate), publish/lookup, holds,
 * usage, lazy growth, vm space, and memcheck finding and repairing damage.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

#define MiB (1ull << 20)

static struct l1_layout kv16k(void)
{
	struct l1_layout l;
	ck_assert_int_eq(l1_layout_parse("[2,32,128]:fp16", &l), 0);
	return l;
}

START_TEST(create_open_destroy)
{
	struct l1_config c;
	struct l1_arena *a, *b;
	l1t_config(&c, "cod", 16 * MiB);
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	char path[512];
	snprintf(path, sizeof path, "%s", l1_arena_path(a));
	ck_assert_int_eq(l1_arena_create(&c, &b), -EEXIST);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "already exists"));
	ck_assert_int_eq(l1_arena_open(path, NULL, &b), 0);
	struct l1_vm_space va, vb;
	l1_get_vm_space(a, &va);
	l1_get_vm_space(b, &vb);
	ck_assert_uint_eq(va.pool_id, vb.pool_id);
	ck_assert_uint_eq(va.size, vb.size);
	ck_assert_int_eq(l1_arena_destroy(path, 0), -EBUSY);
	l1_arena_close(b);
	l1_arena_close(a);
	l1_arena_close(NULL);
	ck_assert_int_eq(l1_arena_destroy(path, 0), 0);
	ck_assert_int_eq(access(path, F_OK), -1);
	ck_assert_int_eq(l1_arena_open(path, NULL, &b), -ENOENT);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "l1ctl create"));
}
END_TEST

START_TEST(force_recreate)
{
	struct l1_config c;
	struct l1_arena *a, *b;
	l1t_config(&c, "force", 8 * MiB);
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	uint64_t id = 0;
	struct l1_vm_space v;
	l1_get_vm_space(a, &v);
	id = v.pool_id;
	l1_arena_close(a);
	c.force = 1;
	ck_assert_int_eq(l1_arena_create(&c, &b), 0);
	l1_get_vm_space(b, &v);
	ck_assert_uint_ne(v.pool_id, id);
	l1t_destroy(b);
}
END_TEST

/* Plain files (hugetlbfs has no write()): damaged pools are made in /dev/shm. */
static const char *write_file(const char *name, const void *data, size_t len)
{
	static char p[256];
	snprintf(p, sizeof p, "/dev/shm/l1test-%s-%d", name, (int)getpid());
	int fd = open(p, O_CREAT | O_RDWR | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	return p;
}

START_TEST(refuses_bad_files)
{
	struct l1_arena *a;
	static char junk[8192];
	memset(junk, 'x', sizeof junk);
	const char *p = write_file("junk", junk, sizeof junk);
	ck_assert_int_eq(l1_arena_open(p, NULL, &a), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "magic"));
	ck_assert_int_eq(l1_arena_destroy(p, 0), -EBADMSG);
	unlink(p);
	p = write_file("tiny", junk, 100);
	ck_assert_int_eq(l1_arena_open(p, NULL, &a), -EBADMSG);
	unlink(p);

	/* a real pool, then damaged copies of its header in a plain file */
	struct l1_arena *good = l1t_create("good", 8 * MiB);
	struct l1_hdr h = *good->h;
	l1t_destroy(good);
	static char img[3 * 4096 * 4];
	memcpy(img, &h, sizeof h);
	struct l1_hdr *hh = (struct l1_hdr *)(void *)img;
	hh->major = 99;
	p = write_file("version", img, sizeof img);
	ck_assert_int_eq(l1_arena_open(p, NULL, &a), -EPROTO);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "version"));
	unlink(p);
	hh->major = L1_FMT_MAJOR;
	p = write_file("truncated", img, sizeof img);
	ck_assert_int_eq(l1_arena_open(p, NULL, &a), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "truncated"));
	unlink(p);
}
END_TEST

START_TEST(alloc_basic)
{
	struct l1_arena *a = l1t_create("basic", 16 * MiB);
	struct l1_layout l = kv16k();
	struct l1_obj o[64];
	ck_assert_int_eq(l1_alloc(a, &l, 64, o), 0);
	struct l1_vm_space v;
	l1_get_vm_space(a, &v);
	for (int i = 0; i < 64; i++) {
		ck_assert_uint_eq(o[i].size, 16384);
		ck_assert_ptr_eq(o[i].ptr, (char *)v.base + o[i].offset);
		ck_assert_uint_ge(o[i].offset, v.data_offset);
		ck_assert_uint_eq(o[i].offset % 4096, 0);
		ck_assert_uint_eq(o[i].pool_id, v.pool_id);
		for (int j = 0; j < i; j++) {
			ck_assert_uint_ne(o[i].id, o[j].id);
			ck_assert(o[i].offset + o[i].size <= o[j].offset ||
				  o[j].offset + o[j].size <= o[i].offset);
		}
		l1t_fill(o[i].ptr, o[i].size, (uint64_t)i);
	}
	for (int i = 0; i < 64; i++)
		ck_assert(l1t_check(o[i].ptr, o[i].size, (uint64_t)i));
	struct l1_layout back;
	ck_assert_int_eq(l1_arena_layout(a, o[0].layout_id, &back), 0);
	ck_assert_uint_eq(back.t[0].shape[2], 128);
	uint64_t used, total;
	l1_get_memory_usage(a, &used, &total);
	ck_assert_uint_eq(used, 64 * 16384);
	ck_assert_uint_eq(total, 16 * MiB);
	l1t_memcheck_clean(a);
	ck_assert_int_eq(l1_free(a, o, 64), 0);
	l1_get_memory_usage(a, &used, &total);
	ck_assert_uint_eq(used, 0);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

START_TEST(all_or_nothing)
{
	struct l1_config c;
	struct l1_arena *a;
	l1t_config(&c, "aon", 4 * MiB);
	c.zero_on_free = 0;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	struct l1_layout l = kv16k();
	static struct l1_obj o[300];
	ck_assert_int_eq(l1_alloc(a, &l, 257, o), -ENOMEM);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.used_bytes, 0);
	ck_assert_uint_eq(u.objects[L1_STATE_ALLOCATED], 0);
	ck_assert_uint_eq(u.ooms, 1);
	ck_assert_uint_eq(u.largest_free_bytes, 4 * MiB);
	l1t_memcheck_clean(a);
	ck_assert_int_eq(l1_alloc(a, &l, 256, o), 0);
	ck_assert_int_eq(l1_alloc(a, &l, 1, o + 256), -ENOMEM);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "out of memory"));
	ck_assert_int_eq(l1_free(a, o, 1), 0);
	ck_assert_int_eq(l1_alloc(a, &l, 1, o + 256), 0);
	ck_assert_uint_eq(o[256].offset, o[0].offset);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

START_TEST(alloc_errors)
{
	struct l1_arena *a = l1t_create("aerr", 8 * MiB);
	struct l1_layout l = kv16k(), bad;
	struct l1_obj o[4];
	ck_assert_int_eq(l1_alloc(a, &l, 0, o), -EINVAL);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "count is 0"));
	ck_assert_int_eq(l1_alloc(NULL, &l, 1, o), -EINVAL);
	ck_assert_int_eq(l1_alloc(a, NULL, 1, o), -EINVAL);
	ck_assert_int_eq(l1_alloc(a, &l, 1, NULL), -EINVAL);
	memset(&bad, 0, sizeof bad);
	ck_assert_int_eq(l1_alloc(a, &bad, 1, o), -EINVAL);
	bad.ntensors = 1;
	bad.t[0].dtype = L1_DTYPE_FP16;
	bad.t[0].ndim = 1;
	bad.t[0].shape[0] = 0;
	ck_assert_int_eq(l1_alloc(a, &bad, 1, o), -EINVAL);
	bad.t[0].ndim = 3;
	bad.t[0].shape[0] = bad.t[0].shape[1] = bad.t[0].shape[2] = 1ull << 40;
	ck_assert_int_eq(l1_alloc(a, &bad, 1, o), -EINVAL);
	bad.t[0].ndim = 1;
	bad.t[0].shape[0] = 4;
	bad.t[0].dtype = 1234;
	ck_assert_int_eq(l1_alloc(a, &bad, 1, o), -EINVAL);
	/* larger than the pool: it can never fit, OUT_OF_MEMORY like LMCache */
	ck_assert_int_eq(l1_alloc_bytes(a, 64 * MiB, 1, o), -ENOMEM);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "larger than the pool"));
	ck_assert_int_eq(l1_alloc(a, &l, 4000000, o), -ENOSPC);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.used_bytes, 0);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

/* An object larger than the grow step but not than the pool: a limit of
 * this pool's configuration, -EINVAL with a sentence that says so. */
START_TEST(alloc_larger_than_step)
{
	struct l1_config c;
	struct l1_arena *a;
	struct l1_obj o;
	l1t_config(&c, "astep", 8 * MiB);
	c.grow_step_bytes = 2 * MiB;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	ck_assert_int_eq(l1_alloc_bytes(a, 4 * MiB, 1, &o), -EINVAL);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "grow step"));
	l1t_destroy(a);
}
END_TEST

/* An object's data size (the bytes asked for) and its physical size (the
 * block): both in what allocate, get, info and lookup hand back. */
START_TEST(data_and_physical_size)
{
	struct l1_arena *a = l1t_create("dsize", 8 * MiB);
	struct l1_layout l;
	struct l1_obj o, b, g;
	struct l1_obj_info oi;
	ck_assert_int_eq(l1_layout_parse("[3,5,7]:fp16", &l), 0);
	ck_assert_int_eq(l1_alloc(a, &l, 1, &o), 0);
	ck_assert_uint_eq(o.data_size, 210);
	ck_assert_uint_eq(o.size, 4096);
	ck_assert_int_eq(l1_get(a, o.id, &g), 0);
	ck_assert_uint_eq(g.data_size, 210);
	ck_assert_uint_eq(g.size, 4096);
	ck_assert_int_eq(l1_obj_info(a, o.id, &oi), 0);
	ck_assert_uint_eq(oi.obj.data_size, 210);
	ck_assert_int_eq(l1_alloc_bytes(a, 5, 1, &b), 0);
	ck_assert_uint_eq(b.data_size, 5);
	ck_assert_uint_eq(b.size, 4096);
	/* used bytes count whole blocks */
	uint64_t used, total;
	l1_get_memory_usage(a, &used, &total);
	ck_assert_uint_eq(used, 8192);
	/* set_data_size: 1..physical, owner, unpublished only */
	ck_assert_int_eq(l1_obj_set_data_size(a, b.id, 100), 0);
	ck_assert_int_eq(l1_get(a, b.id, &g), 0);
	ck_assert_uint_eq(g.data_size, 100);
	ck_assert_int_eq(l1_obj_set_data_size(a, b.id, 0), -EINVAL);
	ck_assert_int_eq(l1_obj_set_data_size(a, b.id, 4097), -EINVAL);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "physical size"));
	ck_assert_int_eq(l1_obj_set_data_size(a, b.id, 4096), 0);
	ck_assert_int_eq(l1_publish(a, b.id, "five"), 0);
	ck_assert_int_eq(l1_obj_set_data_size(a, b.id, 5), -EBUSY);
	ck_assert_int_eq(l1_lookup(a, "five", &g), 0);
	ck_assert_uint_eq(g.data_size, 4096);
	l1t_memcheck_clean(a);
	ck_assert_int_eq(l1_free(a, &o, 1), 0);
	ck_assert_int_eq(l1_obj_set_data_size(a, o.id, 5), -EALREADY);
	l1t_destroy(a);
}
END_TEST

/* The pool holds what was asked for, not the huge page multiple behind it:
 * 12.5 MiB takes 32 objects of 400 KiB, not a 33rd, on any backing. */
START_TEST(pool_size_is_exact)
{
	const uint64_t size = 13107200;
	struct l1_config c;
	struct l1_arena *a, *b;
	struct l1_layout l;
	struct l1_obj o[33];
	l1t_config(&c, "exact", size);
	c.grow_step_bytes = 0;
	ck_assert_msg(l1_arena_create(&c, &a) == 0, "%s", l1_last_error());
	uint64_t used, total;
	l1_get_memory_usage(a, &used, &total);
	ck_assert_uint_eq(total, size);
	struct l1_usage u;
	ck_assert_int_eq(l1_arena_usage(a, &u), 0);
	ck_assert_uint_eq(u.total_bytes, size);
	ck_assert_uint_eq(u.free_bytes, size);
	ck_assert_uint_eq(u.largest_free_bytes, size);
	struct l1_vm_space v;
	ck_assert_int_eq(l1_get_vm_space(a, &v), 0);
	ck_assert_uint_eq(v.data_size, size);
	ck_assert_uint_ge(v.size, v.data_offset + size);
	ck_assert_int_eq(l1_layout_parse("[100,2,1024]:bf16", &l), 0);
	ck_assert_int_eq(l1_alloc(a, &l, 33, o), -ENOMEM);
	for (int i = 0; i < 32; i++)
		ck_assert_int_eq(l1_alloc(a, &l, 1, &o[i]), 0);
	ck_assert_int_eq(l1_alloc(a, &l, 1, &o[32]), -ENOMEM);
	l1_get_memory_usage(a, &used, &total);
	ck_assert_uint_eq(used, size);
	l1t_memcheck_clean(a);
	/* another process's view of the same header agrees */
	ck_assert_int_eq(l1_arena_open(l1_arena_path(a), NULL, &b), 0);
	l1_get_memory_usage(b, &used, &total);
	ck_assert_uint_eq(total, size);
	l1_arena_close(b);
	l1t_destroy(a);
}
END_TEST

/* Objects are aligned in memory to align_bytes, also above the page the
 * kernel aligns mappings to (4 KiB on /dev/shm, the huge page on
 * hugetlbfs), in the creator and in a process that attaches. */
START_TEST(large_align_honoured)
{
	static const uint64_t aligns[] = { 64 << 10, 4 * MiB };
	for (unsigned k = 0; k < 2; k++) {
		struct l1_config c;
		struct l1_arena *a, *b;
		struct l1_obj o[3], g;
		l1t_config(&c, "align", 16 * MiB);
		c.align_bytes = aligns[k];
		c.grow_step_bytes = 0;
		ck_assert_msg(l1_arena_create(&c, &a) == 0, "%s", l1_last_error());
		ck_assert_int_eq(l1_alloc_bytes(a, 210, 3, o), 0);
		for (int i = 0; i < 3; i++)
			ck_assert_uint_eq((uintptr_t)o[i].ptr % aligns[k], 0);
		ck_assert_int_eq(l1_arena_open(l1_arena_path(a), NULL, &b), 0);
		ck_assert_int_eq(l1_get(b, o[2].id, &g), 0);
		ck_assert_uint_eq((uintptr_t)g.ptr % aligns[k], 0);
		memset(g.ptr, 0x5a, g.size);
		ck_assert_uint_eq(((unsigned char *)o[2].ptr)[g.size - 1], 0x5a);
		l1_arena_close(b);
		l1t_destroy(a);
	}
}
END_TEST

START_TEST(free_detections)
{
	struct l1_config c;
	struct l1_arena *a, *other;
	l1t_config(&c, "freedet", 8 * MiB);
	c.zero_on_free = 0;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	other = l1t_create("other", 8 * MiB);
	struct l1_obj o[4], again, foreign;
	ck_assert_int_eq(l1_alloc_bytes(a, 4096, 4, o), 0);
	ck_assert_int_eq(l1_alloc_bytes(other, 4096, 1, &foreign), 0);
	/* foreign object */
	ck_assert_int_eq(l1_free(a, &foreign, 1), -EXDEV);
	/* duplicate inside one batch: nothing freed */
	struct l1_obj dup[3] = { o[0], o[1], o[0] };
	ck_assert_int_eq(l1_free(a, dup, 3), -EINVAL);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "nothing was freed"));
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.objects[L1_STATE_ALLOCATED], 4);
	/* double free */
	ck_assert_int_eq(l1_free(a, &o[0], 1), 0);
	ck_assert_int_eq(l1_free(a, &o[0], 1), -EALREADY);
	/* stale: the slot is reused by a new object */
	ck_assert_int_eq(l1_alloc_bytes(a, 4096, 1, &again), 0);
	ck_assert_uint_eq(again.id & 0xffffffff, o[0].id & 0xffffffff);
	ck_assert_uint_ne(again.id, o[0].id);
	ck_assert_int_eq(l1_free(a, &o[0], 1), -ESTALE);
	/* a bad entry after good ones: the good ones stay */
	struct l1_obj mix[2] = { o[1], o[0] };
	ck_assert_int_eq(l1_free(a, mix, 2), -ESTALE);
	ck_assert_int_eq(l1_get(a, o[1].id, &again), 0);
	uint64_t bogus = 999999;
	ck_assert_int_eq(l1_free_ids(a, &bogus, 1), -ENOENT);
	l1t_memcheck_clean(a);
	l1t_memcheck_clean(other);
	l1t_destroy(other);
	l1t_destroy(a);
}
END_TEST

START_TEST(publish_lookup)
{
	struct l1_arena *a = l1t_create("pub", 8 * MiB);
	struct l1_obj o[2], f;
	ck_assert_int_eq(l1_alloc_bytes(a, 10000, 2, o), 0);
	l1t_fill(o[0].ptr, 8192, 7);
	ck_assert_int_eq(l1_lookup(a, "layer0/chunk0", &f), -ENOENT);
	ck_assert_int_eq(l1_publish(a, o[0].id, "layer0/chunk0"), 0);
	ck_assert_int_eq(l1_publish(a, o[0].id, "x"), -EEXIST);
	ck_assert_int_eq(l1_publish(a, o[1].id, "layer0/chunk0"), -EEXIST);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "already published"));
	char longkey[200];
	memset(longkey, 'k', sizeof longkey - 1);
	longkey[199] = 0;
	ck_assert_int_eq(l1_publish(a, o[1].id, longkey), -EINVAL);
	longkey[127] = 0;
	ck_assert_int_eq(l1_publish(a, o[1].id, longkey), 0);
	ck_assert_int_eq(l1_lookup(a, longkey, &f), 0);
	ck_assert_uint_eq(f.id, o[1].id);
	ck_assert_int_eq(l1_lookup(a, "layer0/chunk0", &f), 0);
	ck_assert_uint_eq(f.id, o[0].id);
	ck_assert(l1t_check(f.ptr, 8192, 7));
	ck_assert_int_eq(l1_get(a, o[0].id, &f), 0);
	struct l1_obj_info info;
	ck_assert_int_eq(l1_obj_info(a, o[0].id, &info), 0);
	ck_assert_str_eq(info.key, "layer0/chunk0");
	ck_assert_uint_eq(info.state, L1_STATE_PUBLISHED);
	ck_assert_int_eq(info.owner_pid, getpid());
	ck_assert_uint_ne(info.publish_ns, 0);
	l1t_memcheck_clean(a);
	ck_assert_int_eq(l1_free(a, o, 1), 0);
	ck_assert_int_eq(l1_lookup(a, "layer0/chunk0", &f), -ENOENT);
	/* the key is free again */
	ck_assert_int_eq(l1_alloc_bytes(a, 100, 1, o), 0);
	ck_assert_int_eq(l1_publish(a, o[0].id, "layer0/chunk0"), 0);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	uint64_t cursor = 0;
	struct l1_obj_info list[8];
	ck_assert_int_eq(l1_obj_list(a, &cursor, list, 8), 2);
	ck_assert_int_eq(l1_obj_list(a, &cursor, list, 8), 0);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

START_TEST(holds_defer_free)
{
	struct l1_arena *a = l1t_create("holds", 8 * MiB);
	struct l1_obj o, h;
	ck_assert_int_eq(l1_alloc_bytes(a, 8192, 1, &o), 0);
	l1t_fill(o.ptr, 8192, 42);
	ck_assert_int_eq(l1_publish(a, o.id, "held"), 0);
	ck_assert_int_eq(l1_hold_key(a, "held", &h), 0);
	ck_assert_int_eq(l1_hold(a, o.id, NULL), 0);
	ck_assert_int_eq(l1_free(a, &o, 1), 0);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.objects[L1_STATE_DOOMED], 1);
	ck_assert_uint_eq(u.holds, 2);
	ck_assert_int_eq(l1_lookup(a, "held", &h), -ENOENT);
	ck_assert_int_eq(l1_hold(a, o.id, NULL), -EALREADY);
	ck_assert_int_eq(l1_free(a, &o, 1), -EALREADY);
	l1_arena_flush(a, 1000);
	ck_assert(l1t_check(o.ptr, 8192, 42));         /* bytes stay while held */
	l1t_memcheck_clean(a);
	ck_assert_int_eq(l1_release(a, o.id), 0);
	ck_assert(l1t_check(o.ptr, 8192, 42));
	ck_assert_int_eq(l1_release(a, o.id), 0);
	ck_assert_int_eq(l1_arena_flush(a, 10000), 0);
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.objects[L1_STATE_DOOMED], 0);
	ck_assert_uint_eq(u.holds, 0);
	ck_assert_uint_eq(u.used_bytes, 0);
	ck_assert(l1t_is_zero(o.ptr, 8192));
	ck_assert_int_eq(l1_release(a, o.id), -EALREADY);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

START_TEST(lazy_growth)
{
	struct l1_config c;
	struct l1_arena *a;
	l1t_config(&c, "lazy", 64 * MiB);
	c.lazy = 1;
	c.grow_step_bytes = 8 * MiB;
	c.init_size_bytes = 8 * MiB;
	c.zero_on_free = 0;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.committed_bytes, 8 * MiB);
	ck_assert_uint_eq(u.total_bytes, 64 * MiB);
	static struct l1_obj o[64];
	/* 3 MiB objects: two per 8 MiB step, never straddling */
	ck_assert_int_eq(l1_alloc_bytes(a, 3 * MiB, 6, o), 0);
	l1_arena_usage(a, &u);
	ck_assert_uint_ge(u.committed_bytes, 24 * MiB);
	struct l1_vm_space v;
	l1_get_vm_space(a, &v);
	for (int i = 0; i < 6; i++) {
		uint64_t rel = o[i].offset - v.data_offset;
		ck_assert_uint_eq(rel / (8 * MiB), (rel + o[i].size - 1) / (8 * MiB));
		ck_assert_uint_le(rel + o[i].size, u.committed_bytes);
		memset(o[i].ptr, 0xab, o[i].size);
	}
	ck_assert_int_eq(l1_alloc_bytes(a, 3 * MiB, 11, o + 6), -ENOMEM);
	ck_assert_int_eq(l1_alloc_bytes(a, 3 * MiB, 10, o + 6), 0);
	l1_arena_usage(a, &u);
	ck_assert_uint_eq(u.committed_bytes, 64 * MiB);
	ck_assert_int_eq(l1_alloc_bytes(a, 3 * MiB, 1, o + 16), -ENOMEM);
	ck_assert_int_eq(l1_alloc_bytes(a, 2 * MiB, 8, o + 16), 0);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

/* Huge pages this test may still take: the free blocks of the test's
 * hugetlbfs mount, which tests/run.sh caps with size= at the pages it set
 * aside.  Without a cap (f_blocks 0) the machine's free - reserved pages,
 * which another program may change under us: such a run says so. */
static uint64_t mount_free_pages(int *capped)
{
	struct statfs sf;
	*capped = 0;
	if (statfs(getenv("L1_TEST_DIR"), &sf) == 0 && sf.f_blocks > 0) {
		*capped = 1;
		return (uint64_t)sf.f_bfree * (uint64_t)sf.f_bsize / (2 * MiB);
	}
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	unsigned long long fr = 0, rs = 0;
	while (f && fgets(line, sizeof line, f)) {
		sscanf(line, "HugePages_Free: %llu", &fr);
		sscanf(line, "HugePages_Rsvd: %llu", &rs);
	}
	if (f)
		fclose(f);
	return fr > rs ? fr - rs : 0;
}

/* A lazy pool larger than the free huge pages: growth stops with a clear
 * status and allocate reports OUT_OF_MEMORY, never SIGBUS. */
START_TEST(growth_stops_cleanly)
{
	if (!l1t_on_hugetlbfs()) {
		fprintf(stderr, "growth_stops_cleanly: pools are on shm here; the huge page "
			"limit is checked when tests/run.sh runs as root\n");
		return;
	}
	int capped;
	uint64_t pages = mount_free_pages(&capped);
	if (!capped) {
		fprintf(stderr, "growth_stops_cleanly: the test hugetlbfs has no size= limit; "
			"skipped, since it would take every free huge page of the machine\n");
		return;
	}
	ck_assert_uint_gt(pages, 16);
	struct l1_config c;
	struct l1_arena *a;
	l1t_config(&c, "growstop", (pages + 64) * 2 * MiB);
	c.lazy = 1;
	c.grow_step_bytes = 16 * MiB;
	c.init_size_bytes = 16 * MiB;
	c.zero_on_free = 0;
	c.max_objects = 4096;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	static struct l1_obj o[4096];
	uint32_t n = 0;
	int r;
	while ((r = l1_alloc_bytes(a, 2 * MiB, 1, &o[n])) == 0) {
		memset(o[n].ptr, 0x5a, o[n].size);      /* every page is really there */
		n++;
	}
	ck_assert_int_eq(r, -ENOMEM);
	struct l1_usage u;
	l1_arena_usage(a, &u);
	ck_assert_int_eq(u.grow_failed, 1);
	ck_assert_ptr_nonnull(strstr(u.grow_reason, "huge pages"));
	ck_assert_uint_lt(u.committed_bytes, u.total_bytes);
	ck_assert_uint_eq((uint64_t)n * 2 * MiB, u.committed_bytes);
	l1t_memcheck_clean(a);
	ck_assert_int_eq(l1_free(a, o, n), 0);
	l1t_destroy(a);
	ck_assert_uint_eq(mount_free_pages(&capped), pages);    /* all given back */
}
END_TEST

/* The layout table has 1024 slots; a slot no live object uses is reused,
 * so a client may use any number of distinct layouts over time. */
START_TEST(layout_slots_are_reused)
{
	struct l1_config c;
	struct l1_arena *a;
	l1t_config(&c, "layouts", 64 * MiB);
	c.zero_on_free = 0;
	c.max_objects = 4096;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	struct l1_obj o;
	for (uint64_t i = 1; i <= 3000; i++) {          /* 3000 distinct layouts */
		ck_assert_int_eq(l1_alloc_bytes(a, i, 1, &o), 0);
		ck_assert_int_eq(l1_free(a, &o, 1), 0);
	}
	l1t_memcheck_clean(a);
	static struct l1_obj live[1024];
	for (uint64_t i = 0; i < 1024; i++)             /* every slot in use */
		ck_assert_int_eq(l1_alloc_bytes(a, 5000 + i, 1, &live[i]), 0);
	ck_assert_int_eq(l1_alloc_bytes(a, 9999, 1, &o), -ENOSPC);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "layout table full"));
	ck_assert_int_eq(l1_alloc_bytes(a, 5000, 1, &o), 0);    /* a known layout */
	struct l1_layout l;
	ck_assert_int_eq(l1_arena_layout(a, o.layout_id, &l), 0);
	ck_assert_uint_eq(l.t[0].shape[0], 5000);
	ck_assert_int_eq(l1_free(a, &live[7], 1), 0);
	ck_assert_int_eq(l1_alloc_bytes(a, 9999, 1, &o), 0);    /* takes slot of 5007 */
	ck_assert_int_eq(l1_arena_layout(a, o.layout_id, &l), 0);
	ck_assert_uint_eq(l.t[0].shape[0], 9999);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

START_TEST(memcheck_repairs)
{
	struct l1_config c;
	struct l1_arena *a;
	l1t_config(&c, "repair", 8 * MiB);
	c.zero_on_free = 0;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	struct l1_obj o[8];
	ck_assert_int_eq(l1_alloc_bytes(a, 4096, 8, o), 0);
	ck_assert_int_eq(l1_publish(a, o[0].id, "k0"), 0);
	/* damage derived state: a leaked bit, a lost bit, a counter, a bucket */
	a->bitmap[a->h->bitmap_words - 1] |= 1ull << 5;
	uint64_t b = (o[3].offset - a->h->data_off) / a->h->block_size;
	a->bitmap[b >> 6] &= ~(1ull << (b & 63));
	atomic_fetch_add(&a->h->used_bytes, 12345);
	memset(a->buckets, 0, a->h->nbuckets * 4);
	char rep[4096];
	int n = l1_arena_memcheck(a, 0, rep, sizeof rep);
	ck_assert_int_ge(n, 4);
	ck_assert_ptr_nonnull(strstr(rep, "leak"));
	ck_assert_ptr_nonnull(strstr(rep, "marked free"));
	ck_assert_ptr_nonnull(strstr(rep, "used_bytes"));
	ck_assert_ptr_nonnull(strstr(rep, "key 'k0'"));
	ck_assert_int_eq(l1_arena_memcheck(a, 1, rep, sizeof rep), 0);
	ck_assert_ptr_nonnull(strstr(rep, "repaired"));
	l1t_memcheck_clean(a);
	struct l1_obj f;
	ck_assert_int_eq(l1_lookup(a, "k0", &f), 0);
	ck_assert_int_eq(l1_free(a, o, 8), 0);
	l1t_memcheck_clean(a);
	l1t_destroy(a);
}
END_TEST

START_TEST(vm_space_and_usage)
{
	struct l1_arena *a = l1t_create("vm", 32 * MiB);
	struct l1_vm_space v;
	ck_assert_int_eq(l1_get_vm_space(a, &v), 0);
	ck_assert_ptr_nonnull(v.base);
	ck_assert_int_ge(v.fd, 0);
	ck_assert_uint_eq(v.data_size, 32 * MiB);
	ck_assert_uint_ge(v.size, v.data_offset + v.data_size);
	ck_assert_uint_eq(v.committed, 32 * MiB);
	ck_assert_str_eq(v.path, l1_arena_path(a));
	struct stat st;
	ck_assert_int_eq(fstat(v.fd, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, v.size);
	struct l1_usage u;
	ck_assert_int_eq(l1_arena_usage(a, &u), 0);
	ck_assert_str_eq(u.backing, l1t_on_hugetlbfs() ? "hugetlbfs" : "shm");
	ck_assert_uint_eq(u.clients, 1);
	ck_assert_uint_gt(u.metadata_bytes, 0);
	struct l1_client_info ci[4];
	ck_assert_int_eq(l1_arena_clients(a, ci, 4), 1);
	ck_assert_int_eq(ci[0].pid, getpid());
	ck_assert_uint_eq(ci[0].alive, 1);
	l1t_destroy(a);
}
END_TEST

/* A path means that path (issue 11): open and destroy of a missing file
 * never act on /dev/shm/<basename> instead; create may move a pool whose
 * directory is missing to /dev/shm only with allow_shm, says where (its
 * path), and never replaces what is there, even with force. */
START_TEST(path_is_path)
{
	char victim[256], missing[512], elsewhere[256], moved[256];
	struct l1_config c;
	struct l1_arena *v, *a;
	struct l1_vm_space vm;
	snprintf(victim, sizeof victim, "/dev/shm/l1test-victim-%d", (int)getpid());
	snprintf(missing, sizeof missing, "%s/l1test-victim-%d", l1t_shm_dir(), (int)getpid());
	snprintf(elsewhere, sizeof elsewhere, "/no-such-dir-%d/l1test-victim-%d",
		 (int)getpid(), (int)getpid());
	l1t_config(&c, "unused", 8 * MiB);
	c.path = victim;
	c.allow_shm = 1;
	ck_assert_int_eq(l1_arena_create(&c, &v), 0);
	ck_assert_str_eq(l1_arena_path(v), victim);
	l1_get_vm_space(v, &vm);

	ck_assert_int_eq(l1_arena_open(missing, NULL, &a), -ENOENT);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), missing));
	ck_assert_int_eq(l1_arena_destroy(missing, 0), -ENOENT);
	ck_assert_int_eq(l1_arena_destroy(missing, 1), -ENOENT);
	ck_assert_int_eq(l1_arena_destroy(elsewhere, 1), -ENOENT);
	ck_assert_int_eq(access(victim, F_OK), 0);

	c.path = elsewhere;
	c.force = 1;
	ck_assert_int_eq(l1_arena_create(&c, &a), -EEXIST);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "never replaces"));
	struct l1_vm_space vm2;
	ck_assert_int_eq(l1_arena_open(victim, NULL, &a), 0);
	l1_get_vm_space(a, &vm2);
	ck_assert_uint_eq(vm2.pool_id, vm.pool_id);     /* the same pool, untouched */
	l1_arena_close(a);
	c.allow_shm = 0;
	ck_assert_int_eq(l1_arena_create(&c, &a), -ENODEV);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "does not exist"));

	snprintf(elsewhere, sizeof elsewhere, "/no-such-dir-%d/l1test-moved-%d",
		 (int)getpid(), (int)getpid());
	snprintf(moved, sizeof moved, "/dev/shm/l1test-moved-%d", (int)getpid());
	c.path = elsewhere;
	c.allow_shm = 1;
	c.force = 0;
	ck_assert_int_eq(l1_arena_create(&c, &a), 0);
	ck_assert_str_eq(l1_arena_path(a), moved);      /* it says where it went */
	l1_arena_close(a);
	ck_assert_int_eq(l1_arena_destroy(moved, 0), 0);
	l1_arena_close(v);
	ck_assert_int_eq(l1_arena_destroy(victim, 0), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("arena");
	TCase *t = tcase_create("lifecycle");
	tcase_add_test(t, create_open_destroy);
	tcase_add_test(t, force_recreate);
	tcase_add_test(t, refuses_bad_files);
	tcase_add_test(t, path_is_path);
	tcase_add_test(t, vm_space_and_usage);
	suite_add_tcase(s, t);
	t = tcase_create("alloc");
	tcase_add_test(t, alloc_basic);
	tcase_add_test(t, all_or_nothing);
	tcase_add_test(t, alloc_errors);
	tcase_add_test(t, lazy_growth);
	tcase_add_test(t, growth_stops_cleanly);
	tcase_add_test(t, layout_slots_are_reused);
	tcase_add_test(t, alloc_larger_than_step);
	suite_add_tcase(s, t);
	t = tcase_create("sizes");
	tcase_add_test(t, data_and_physical_size);
	tcase_add_test(t, pool_size_is_exact);
	tcase_add_test(t, large_align_honoured);
	suite_add_tcase(s, t);
	t = tcase_create("free");
	tcase_add_test(t, free_detections);
	suite_add_tcase(s, t);
	t = tcase_create("publish");
	tcase_add_test(t, publish_lookup);
	tcase_add_test(t, holds_defer_free);
	suite_add_tcase(s, t);
	t = tcase_create("memcheck");
	tcase_add_test(t, memcheck_repairs);
	suite_add_tcase(s, t);
	return l1t_run_suite(s);
}
