/*
 * config.c - the pool configuration (the C form of LMCache's
 * L1MemoryManagerConfig): defaults, and validation that names the field at
 * fault.  Pure functions over caller memory; no shared state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define L1_CONFIG_VERSION 1u

void l1_config_init(struct l1_config *c)
{
	if (!c)
		return;
	memset(c, 0, sizeof *c);
	c->version = L1_CONFIG_VERSION;
	c->lazy = 1;
	c->zero_on_free = 1;
	c->zero_method = L1_ZERO_AUTO;
	c->pin = L1_PIN_AUTO;
	c->mode = 0600;
}

void l1_open_opts_init(struct l1_open_opts *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof *o);
	o->pin = L1_PIN_AUTO;
	o->zero_method = L1_ZERO_AUTO;
}

static int pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

int l1_config_validate(const struct l1_config *c)
{
	if (!c)
		return l1__err(-EINVAL, "config is NULL");
	if (c->version != L1_CONFIG_VERSION)
		return l1__err(-EINVAL, "config.version is %u: initialise with l1_config_init()",
			       c->version);
	if (c->size_bytes == 0)
		return l1__err(-EINVAL, "config.size_bytes is 0: give the pool a size");
	if (c->size_bytes > (1ull << 50))
		return l1__err(-EINVAL, "config.size_bytes (%llu) is larger than 1 PiB",
			       (unsigned long long)c->size_bytes);
	if (c->align_bytes && (!pow2(c->align_bytes) || c->align_bytes < 64))
		return l1__err(-EINVAL, "config.align_bytes (%llu) must be a power of two >= 64",
			       (unsigned long long)c->align_bytes);
	if (c->align_bytes > c->size_bytes)
		return l1__err(-EINVAL, "config.align_bytes (%llu) is larger than size_bytes",
			       (unsigned long long)c->align_bytes);
	if (c->hugepage_size && c->hugepage_size != L1_HUGEPAGE_2M &&
	    c->hugepage_size != L1_HUGEPAGE_1G)
		return l1__err(-EINVAL, "config.hugepage_size must be 2 MiB or 1 GiB (or 0)");
	uint64_t hp = c->hugepage_size ? c->hugepage_size : L1_HUGEPAGE_2M;
	if (c->grow_step_bytes) {
		if (c->grow_step_bytes % hp)
			return l1__err(-EINVAL, "config.grow_step_bytes (%llu) must be a multiple "
				       "of the huge page size (%llu)",
				       (unsigned long long)c->grow_step_bytes, (unsigned long long)hp);
		if (c->align_bytes && c->grow_step_bytes % c->align_bytes)
			return l1__err(-EINVAL, "config.grow_step_bytes must be a multiple of "
				       "align_bytes");
		if (c->grow_step_bytes > (64ull << 30))
			return l1__err(-EINVAL, "config.grow_step_bytes is over 64 GiB (the most "
				       "one CUDA registration may cover)");
	}
	if (c->init_size_bytes && !c->lazy)
		return l1__err(-EINVAL, "config.init_size_bytes is only for lazy pools");
	if (c->init_size_bytes > c->size_bytes)
		return l1__err(-EINVAL, "config.init_size_bytes is larger than size_bytes");
	if (c->max_objects > (1ull << 30))
		return l1__err(-EINVAL, "config.max_objects (%llu) is over 2^30",
			       (unsigned long long)c->max_objects);
	if (c->zero_method < L1_ZERO_AUTO || c->zero_method > L1_ZERO_MEMSET)
		return l1__err(-EINVAL, "config.zero_method %d is unknown", c->zero_method);
	if (c->pin < L1_PIN_OFF || c->pin > L1_PIN_DEFER)
		return l1__err(-EINVAL, "config.pin %d is unknown", c->pin);
	if (c->mode > 0777)
		return l1__err(-EINVAL, "config.mode %o is not a file mode", c->mode);
	const char *path = c->path ? c->path : getenv("L1ARENA_PATH");
	if (path && (strlen(path) >= L1_PATH_MAX || path[0] != '/'))
		return l1__err(-EINVAL, "config.path must be absolute and under %d bytes",
			       L1_PATH_MAX);
	return 0;
}
