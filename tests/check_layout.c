/*
 * check_layout.c - dtypes, layout sizes (with overflow), the text form of
 * layouts, size parsing, and config validation naming the field at fault.
 */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "l1arena.h"
#include "testutil.h"

START_TEST(dtype_sizes)
{
	ck_assert_uint_eq(l1_dtype_size(L1_DTYPE_FP16), 2);
	ck_assert_uint_eq(l1_dtype_size(L1_DTYPE_BF16), 2);
	ck_assert_uint_eq(l1_dtype_size(L1_DTYPE_FP32), 4);
	ck_assert_uint_eq(l1_dtype_size(L1_DTYPE_FP64), 8);
	ck_assert_uint_eq(l1_dtype_size(L1_DTYPE_INT8), 1);
	ck_assert_uint_eq(l1_dtype_size(L1_DTYPE_UINT8), 1);
	ck_assert_uint_eq(l1_dtype_size(L1_DTYPE_INT32), 4);
	ck_assert_uint_eq(l1_dtype_size(L1_DTYPE_INT64), 8);
	ck_assert_uint_eq(l1_dtype_size(L1_DTYPE_FP8_E4M3), 1);
	ck_assert_uint_eq(l1_dtype_size(L1_DTYPE_FP8_E5M2), 1);
	ck_assert_uint_eq(l1_dtype_size(999), 0);
	ck_assert_uint_eq(l1_dtype_parse("float16"), L1_DTYPE_FP16);
	ck_assert_uint_eq(l1_dtype_parse("torch.bfloat16"), L1_DTYPE_BF16);
	ck_assert_uint_eq(l1_dtype_parse("float8_e4m3fn"), L1_DTYPE_FP8_E4M3);
	ck_assert_uint_eq(l1_dtype_parse("complex128"), L1_DTYPE_INVALID);
	ck_assert_str_eq(l1_dtype_name(L1_DTYPE_INT64), "int64");
}
END_TEST

START_TEST(layout_bytes)
{
	struct l1_layout l;
	uint64_t b;
	ck_assert_int_eq(l1_layout_parse("[2,32,128]:fp16", &l), 0);
	ck_assert_int_eq(l1_layout_bytes(&l, &b), 0);
	ck_assert_uint_eq(b, 16384);
	ck_assert_int_eq(l1_layout_parse("[3]:int8;[2]:fp64", &l), 0);
	ck_assert_int_eq(l1_layout_bytes(&l, &b), 0);
	ck_assert_uint_eq(b, 8 + 16);          /* fp64 tensor starts at 8 */
	uint64_t off;
	ck_assert_int_eq(l1_layout_tensor_offset(&l, 1, &off), 0);
	ck_assert_uint_eq(off, 8);
	char buf[128];
	l1_layout_format(&l, buf, sizeof buf);
	ck_assert_str_eq(buf, "[3]:int8;[2]:fp64");
}
END_TEST

START_TEST(layout_errors)
{
	struct l1_layout l;
	uint64_t b;
	memset(&l, 0, sizeof l);
	ck_assert_int_eq(l1_layout_bytes(&l, &b), -EINVAL);        /* no tensors */
	ck_assert_int_eq(l1_layout_bytes(NULL, &b), -EINVAL);
	ck_assert_int_eq(l1_layout_parse("[0]:fp16", &l), -EINVAL); /* zero bytes */
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "zero bytes"));
	ck_assert_int_eq(l1_layout_parse("[4]:complex", &l), -EINVAL);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "unknown dtype"));
	ck_assert_int_eq(l1_layout_parse("[4294967296,4294967296,16]:fp32", &l), -EINVAL);
	ck_assert_ptr_nonnull(strstr(l1_last_error(), "overflow"));
	ck_assert_int_eq(l1_layout_parse("2,3:fp16", &l), -EINVAL);
	memset(&l, 0, sizeof l);
	l.ntensors = 1;
	l.t[0].dtype = 77;
	l.t[0].ndim = 1;
	l.t[0].shape[0] = 4;
	ck_assert_int_eq(l1_layout_bytes(&l, &b), -EINVAL);
	l.t[0].dtype = L1_DTYPE_FP16;
	l.t[0].ndim = L1_MAX_DIMS + 1;
	ck_assert_int_eq(l1_layout_bytes(&l, &b), -EINVAL);
	l.ntensors = L1_MAX_TENSORS + 1;
	ck_assert_int_eq(l1_layout_bytes(&l, &b), -EINVAL);
}
END_TEST

START_TEST(sizes)
{
	uint64_t v;
	ck_assert_int_eq(l1_parse_size("512M", &v), 0);
	ck_assert_uint_eq(v, 512ull << 20);
	ck_assert_int_eq(l1_parse_size("8G", &v), 0);
	ck_assert_uint_eq(v, 8ull << 30);
	ck_assert_int_eq(l1_parse_size("1.5G", &v), 0);
	ck_assert_uint_eq(v, 3ull << 29);
	ck_assert_int_eq(l1_parse_size("4096", &v), 0);
	ck_assert_uint_eq(v, 4096);
	ck_assert_int_eq(l1_parse_size("64MiB", &v), 0);
	ck_assert_uint_eq(v, 64ull << 20);
	ck_assert_int_eq(l1_parse_size("12X", &v), -EINVAL);
	ck_assert_int_eq(l1_parse_size("-1G", &v), -EINVAL);
	ck_assert_int_eq(l1_parse_size("", &v), -EINVAL);
	ck_assert_int_eq(l1_parse_size("lots", &v), -EINVAL);
}
END_TEST

START_TEST(key_view_names)
{
	char name[256], key[128];
	ck_assert_int_eq(l1_key_view_name("model/layer 3", name, sizeof name), 17);
	ck_assert_str_eq(name, "model%2Flayer%203");
	ck_assert_int_eq(l1_key_view_name("@a%b", name, sizeof name), 8);
	ck_assert_str_eq(name, "%40a%25b");
	ck_assert_int_eq(l1_key_view_name("..", name, sizeof name), 6);
	ck_assert_str_eq(name, "%2E%2E");
	memset(key, ' ', 127);          /* 381 bytes encoded: the hex form */
	key[127] = 0;
	ck_assert_int_eq(l1_key_view_name(key, name, sizeof name), 255);
	ck_assert_int_eq(name[0], '@');
	ck_assert_int_eq(l1_key_view_name("", name, sizeof name), -ENAMETOOLONG);
	ck_assert_int_eq(l1_key_view_name("abc", name, 3), -ENAMETOOLONG);
}
END_TEST

static void expect_field(struct l1_config *c, const char *field)
{
	ck_assert_int_eq(l1_config_validate(c), -EINVAL);
	ck_assert_msg(strstr(l1_last_error(), field), "message '%s' should name %s",
		      l1_last_error(), field);
}

START_TEST(config_validation)
{
	struct l1_config c;
	l1_config_init(&c);
	ck_assert_int_eq(c.lazy, 1);
	ck_assert_int_eq(c.zero_on_free, 1);
	ck_assert_int_eq(c.pin, L1_PIN_AUTO);
	expect_field(&c, "size_bytes");
	c.size_bytes = 64ull << 20;
	ck_assert_int_eq(l1_config_validate(&c), 0);
	c.align_bytes = 3000;
	expect_field(&c, "align_bytes");
	c.align_bytes = 128ull << 20;
	expect_field(&c, "align_bytes");
	c.align_bytes = 0;
	c.hugepage_size = 4096;
	expect_field(&c, "hugepage_size");
	c.hugepage_size = 0;
	c.grow_step_bytes = 3ull << 20;
	expect_field(&c, "grow_step_bytes");
	c.grow_step_bytes = 0;
	c.init_size_bytes = 1ull << 30;
	expect_field(&c, "init_size_bytes");
	c.init_size_bytes = 0;
	c.zero_method = 9;
	expect_field(&c, "zero_method");
	c.zero_method = 0;
	c.pin = 7;
	expect_field(&c, "pin");
	c.pin = 0;
	c.path = "relative/path";
	expect_field(&c, "path");
	c.path = NULL;
	c.lazy = 0;
	c.init_size_bytes = 1 << 20;
	expect_field(&c, "init_size_bytes");
	c.version = 0;
	expect_field(&c, "version");
	ck_assert_int_eq(l1_config_validate(NULL), -EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("layout");
	TCase *t = tcase_create("dtypes");
	tcase_add_test(t, dtype_sizes);
	suite_add_tcase(s, t);
	t = tcase_create("layouts");
	tcase_add_test(t, layout_bytes);
	tcase_add_test(t, layout_errors);
	suite_add_tcase(s, t);
	t = tcase_create("sizes");
	tcase_add_test(t, sizes);
	suite_add_tcase(s, t);
	t = tcase_create("view_names");
	tcase_add_test(t, key_view_names);
	suite_add_tcase(s, t);
	t = tcase_create("config");
	tcase_add_test(t, config_validation);
	suite_add_tcase(s, t);
	return l1t_run_suite(s);
}
