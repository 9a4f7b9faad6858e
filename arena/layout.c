/*
 * layout.c - dtypes and tensor layouts: sizes (checked for overflow), the
 * text form used by tools ("[2,32,128]:fp16;[4]:int32"), and interning of
 * layouts in the pool's shared layout table so a record stores a 32-bit id.
 * Interning runs under the pool lock.  Each slot counts the live records of
 * its layout; when the table is full, a slot whose count is 0 takes the new
 * layout and its generation is bumped, so a per-handle cache of the last
 * layout (guarded by a->local, checked against the slot's generation under
 * the pool lock) never names a slot that now holds another layout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static const struct {
	const char *name;
	uint32_t size;
	const char *alias[3];
} dtypes[L1_DTYPE_COUNT] = {
	[L1_DTYPE_INVALID] = { "invalid", 0, { 0 } },
	[L1_DTYPE_FP16] = { "fp16", 2, { "float16", "half", "f16" } },
	[L1_DTYPE_BF16] = { "bf16", 2, { "bfloat16", 0 } },
	[L1_DTYPE_FP32] = { "fp32", 4, { "float32", "float", "f32" } },
	[L1_DTYPE_FP64] = { "fp64", 8, { "float64", "double", "f64" } },
	[L1_DTYPE_INT8] = { "int8", 1, { "i8", 0 } },
	[L1_DTYPE_UINT8] = { "uint8", 1, { "u8", "byte" } },
	[L1_DTYPE_INT16] = { "int16", 2, { "i16", "short" } },
	[L1_DTYPE_INT32] = { "int32", 4, { "i32", "int" } },
	[L1_DTYPE_INT64] = { "int64", 8, { "i64", "long" } },
	[L1_DTYPE_FP8_E4M3] = { "fp8_e4m3", 1, { "float8_e4m3fn", "e4m3" } },
	[L1_DTYPE_FP8_E5M2] = { "fp8_e5m2", 1, { "float8_e5m2", "e5m2" } },
	[L1_DTYPE_BOOL] = { "bool", 1, { 0 } },
	[L1_DTYPE_UINT16] = { "uint16", 2, { "u16", 0 } },
	[L1_DTYPE_UINT32] = { "uint32", 4, { "u32", 0 } },
	[L1_DTYPE_UINT64] = { "uint64", 8, { "u64", 0 } },
};

uint32_t l1_dtype_size(uint32_t dtype)
{
	return dtype < L1_DTYPE_COUNT ? dtypes[dtype].size : 0;
}

const char *l1_dtype_name(uint32_t dtype)
{
	return dtype < L1_DTYPE_COUNT ? dtypes[dtype].name : "invalid";
}

uint32_t l1_dtype_parse(const char *name)
{
	if (!name)
		return L1_DTYPE_INVALID;
	if (!strncmp(name, "torch.", 6))
		name += 6;
	for (uint32_t d = 1; d < L1_DTYPE_COUNT; d++) {
		if (!strcasecmp(name, dtypes[d].name))
			return d;
		for (int i = 0; i < 3 && dtypes[d].alias[i]; i++)
			if (!strcasecmp(name, dtypes[d].alias[i]))
				return d;
	}
	return L1_DTYPE_INVALID;
}

static int tensor_bytes(const struct l1_tensor *t, uint32_t i, uint64_t *out)
{
	uint32_t es = l1_dtype_size(t->dtype);
	if (!es)
		return l1__err(-EINVAL, "tensor %u: unknown dtype %u", i, t->dtype);
	if (t->ndim > L1_MAX_DIMS)
		return l1__err(-EINVAL, "tensor %u: %u dimensions (at most %d)", i,
			       t->ndim, L1_MAX_DIMS);
	uint64_t n = es;
	for (uint32_t d = 0; d < t->ndim; d++)
		if (__builtin_mul_overflow(n, t->shape[d], &n))
			return l1__err(-EINVAL, "tensor %u: shape overflows 64 bits", i);
	*out = n;
	return 0;
}

/* Tensor i starts at the end of i-1 rounded up to its element size. */
static int layout_walk(const struct l1_layout *l, uint32_t upto, uint64_t *off_out,
		       uint64_t *total)
{
	if (!l)
		return l1__err(-EINVAL, "layout is NULL");
	if (l->ntensors == 0 || l->ntensors > L1_MAX_TENSORS)
		return l1__err(-EINVAL, "layout has %u tensors (1..%d)", l->ntensors,
			       L1_MAX_TENSORS);
	uint64_t off = 0;
	for (uint32_t i = 0; i < l->ntensors; i++) {
		uint64_t b = 0;
		int r = tensor_bytes(&l->t[i], i, &b);
		if (r)
			return r;
		uint64_t es = l1_dtype_size(l->t[i].dtype);
		off = (off + es - 1) / es * es;
		if (i == upto && off_out)
			*off_out = off;
		if (__builtin_add_overflow(off, b, &off))
			return l1__err(-EINVAL, "layout size overflows 64 bits");
	}
	if (total)
		*total = off;
	return 0;
}

int l1_layout_bytes(const struct l1_layout *l, uint64_t *out)
{
	uint64_t total;
	int r = layout_walk(l, UINT32_MAX, NULL, &total);
	if (r)
		return r;
	if (total == 0)
		return l1__err(-EINVAL, "layout has zero bytes");
	if (out)
		*out = total;
	return 0;
}

int l1_layout_tensor_offset(const struct l1_layout *l, uint32_t i, uint64_t *off)
{
	if (l && i >= l->ntensors)
		return l1__err(-EINVAL, "tensor %u out of range", i);
	return layout_walk(l, i, off, NULL);
}

int l1_layout_format(const struct l1_layout *l, char *buf, size_t len)
{
	size_t n = 0;
	if (!buf || !len)
		return -EINVAL;
	buf[0] = 0;
	for (uint32_t i = 0; l && i < l->ntensors && i < L1_MAX_TENSORS; i++) {
		n += snprintf(buf + n, n < len ? len - n : 0, "%s[", i ? ";" : "");
		for (uint32_t d = 0; d < l->t[i].ndim && d < L1_MAX_DIMS; d++)
			n += snprintf(buf + n, n < len ? len - n : 0, "%s%llu",
				      d ? "," : "", (unsigned long long)l->t[i].shape[d]);
		n += snprintf(buf + n, n < len ? len - n : 0, "]:%s",
			      l1_dtype_name(l->t[i].dtype));
	}
	return (int)(n < len ? n : len - 1);
}

int l1_layout_parse(const char *s, struct l1_layout *out)
{
	if (!s || !out)
		return l1__err(-EINVAL, "layout text is NULL");
	memset(out, 0, sizeof *out);
	const char *p = s;
	while (*p) {
		while (*p == ' ' || *p == ';')
			p++;
		if (!*p)
			break;
		if (out->ntensors == L1_MAX_TENSORS)
			return l1__err(-EINVAL, "'%s': more than %d tensors", s, L1_MAX_TENSORS);
		struct l1_tensor *t = &out->t[out->ntensors];
		if (*p++ != '[')
			return l1__err(-EINVAL, "'%s': expected '[' (format: [2,32,128]:fp16)", s);
		while (*p != ']') {
			while (*p == ' ' || *p == ',')
				p++;
			if (*p == ']')
				break;
			char *end;
			errno = 0;
			unsigned long long v = strtoull(p, &end, 10);
			if (end == p || errno || *p == '-')
				return l1__err(-EINVAL, "'%s': bad dimension", s);
			if (t->ndim == L1_MAX_DIMS)
				return l1__err(-EINVAL, "'%s': more than %d dimensions", s,
					       L1_MAX_DIMS);
			t->shape[t->ndim++] = v;
			p = end;
			while (*p == ' ')
				p++;
			if (*p != ',' && *p != ']')
				return l1__err(-EINVAL, "'%s': expected ',' or ']'", s);
		}
		p++;
		while (*p == ' ' || *p == ':')
			p++;
		char name[32];
		size_t n = 0;
		while (*p && *p != ';' && *p != ' ' && n < sizeof name - 1)
			name[n++] = *p++;
		name[n] = 0;
		t->dtype = l1_dtype_parse(name);
		if (!t->dtype)
			return l1__err(-EINVAL, "'%s': unknown dtype '%s' (fp16, bf16, fp32, "
				       "fp64, int8, uint8, int32, int64, fp8_e4m3, ...)", s, name);
		out->ntensors++;
	}
	return l1_layout_bytes(out, NULL);
}

static int layout_eq(const struct l1_layout *a, const struct l1_layout *b)
{
	if (a->ntensors != b->ntensors)
		return 0;
	for (uint32_t i = 0; i < a->ntensors; i++) {
		if (a->t[i].dtype != b->t[i].dtype || a->t[i].ndim != b->t[i].ndim)
			return 0;
		for (uint32_t d = 0; d < a->t[i].ndim; d++)
			if (a->t[i].shape[d] != b->t[i].shape[d])
				return 0;
	}
	return 1;
}

/* Copies only the meaningful part so equal layouts hash and compare equal. */
static void layout_canon(const struct l1_layout *in, struct l1_layout *out)
{
	memset(out, 0, sizeof *out);
	out->ntensors = in->ntensors;
	for (uint32_t i = 0; i < in->ntensors; i++) {
		out->t[i].dtype = in->t[i].dtype;
		out->t[i].ndim = in->t[i].ndim;
		for (uint32_t d = 0; d < in->t[i].ndim; d++)
			out->t[i].shape[d] = in->t[i].shape[d];
	}
}

static void slot_fill(struct l1_layout_slot *s, const struct l1_layout *c, uint64_t bytes,
		      uint64_t hash)
{
	s->layout = *c;
	s->bytes = bytes;
	s->hash = hash;
	s->refs = 0;
	s->gen = s->gen + 1 ? s->gen + 1 : 1;
}

/* Under the pool lock: the id (and slot generation) of a layout, adding it
 * to the table, or reusing a slot no live object uses when the table is
 * full. */
int l1__layout_intern(struct l1_arena *a, const struct l1_layout *l, uint32_t *id,
		      uint32_t *gen)
{
	struct l1_layout c;
	layout_canon(l, &c);
	uint64_t hash = l1__hash(&c, sizeof c), b = 0;
	struct l1_hdr *h = a->h;
	uint32_t n = h->nlayouts < h->max_layouts ? h->nlayouts : (uint32_t)h->max_layouts;
	int64_t unused = -1;
	for (uint32_t i = 0; i < n; i++) {
		struct l1_layout_slot *s = &a->layouts[i];
		if (s->hash == hash && layout_eq(&s->layout, &c)) {
			*id = i;
			*gen = s->gen;
			return 0;
		}
		if (unused < 0 && s->refs == 0)
			unused = i;
	}
	int r = l1_layout_bytes(&c, &b);
	if (r)
		return r;
	if (n < h->max_layouts) {
		slot_fill(&a->layouts[n], &c, b, hash);
		__atomic_store_n(&h->nlayouts, n + 1, __ATOMIC_RELEASE);
		*id = n;
	} else if (unused >= 0) {
		slot_fill(&a->layouts[unused], &c, b, hash);
		*id = (uint32_t)unused;
	} else {
		return l1__err(-ENOSPC, "layout table full: all %llu layouts are in use by live "
			       "objects; free objects of other layouts first",
			       (unsigned long long)h->max_layouts);
	}
	*gen = a->layouts[*id].gen;
	return 0;
}

/* Under the pool lock: a record of this layout became live / stopped being. */
void l1__layout_ref(struct l1_arena *a, uint32_t id, int32_t d)
{
	if (id >= a->h->nlayouts || id >= a->h->max_layouts)
		return;
	struct l1_layout_slot *s = &a->layouts[id];
	if (d < 0 && s->refs < (uint32_t)-d)
		s->refs = 0;            /* damaged count: never wrap */
	else
		s->refs += (uint32_t)d;
}

int l1_arena_layout(struct l1_arena *a, uint32_t layout_id, struct l1_layout *out)
{
	int r = l1__handle_check(a);
	if (r)
		return r;
	if (!out)
		return l1__err(-EINVAL, "NULL argument");
	uint32_t n = __atomic_load_n(&a->h->nlayouts, __ATOMIC_ACQUIRE);
	if (layout_id >= n || layout_id >= a->h->max_layouts)
		return l1__err(-ENOENT, "no layout %u in this pool", layout_id);
	*out = a->layouts[layout_id].layout;
	return 0;
}
