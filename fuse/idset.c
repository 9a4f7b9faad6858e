/*
 * idset.c - a set of object ids (open addressing, linear probing, deletion
 * by backward shift).  Slots hold id + 1 so that 0 can mean empty (a nameable id
 * is never all ones).  The load stays under one half.  Callers lock.
 */
#include "l1fs.h"

#include <errno.h>
#include <stdlib.h>

static size_t slot_of(uint64_t key, size_t cap)
{
	key ^= key >> 33;
	key *= 0xff51afd7ed558ccdull;
	key ^= key >> 33;
	return (size_t)key & (cap - 1);
}

static int grow(struct l1fs_idset *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	uint64_t *v = calloc(cap, sizeof *v);
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->v[i])
			continue;
		size_t j = slot_of(s->v[i], cap);
		while (v[j])
			j = (j + 1) & (cap - 1);
		v[j] = s->v[i];
	}
	free(s->v);
	s->v = v;
	s->cap = cap;
	return 0;
}

int l1fs_idset_add(struct l1fs_idset *s, uint64_t id)
{
	uint64_t key = id + 1;

	if ((s->n + 1) * 2 > s->cap && grow(s))
		return -ENOMEM;
	size_t j = slot_of(key, s->cap);
	while (s->v[j]) {
		if (s->v[j] == key)
			return 0;
		j = (j + 1) & (s->cap - 1);
	}
	s->v[j] = key;
	s->n++;
	return 0;
}

int l1fs_idset_take(struct l1fs_idset *s, uint64_t id)
{
	uint64_t key = id + 1;

	if (!s->n)
		return 0;
	size_t mask = s->cap - 1, j = slot_of(key, s->cap);
	while (s->v[j] && s->v[j] != key)
		j = (j + 1) & mask;
	if (!s->v[j])
		return 0;
	/* backward shift: move later members of the run into the hole */
	size_t hole = j;
	for (size_t k = (j + 1) & mask; s->v[k]; k = (k + 1) & mask) {
		size_t home = slot_of(s->v[k], s->cap);
		if (((k - home) & mask) >= ((k - hole) & mask)) {
			s->v[hole] = s->v[k];
			hole = k;
		}
	}
	s->v[hole] = 0;
	s->n--;
	return 1;
}

void l1fs_idset_free(struct l1fs_idset *s)
{
	free(s->v);
	s->v = NULL;
	s->cap = s->n = 0;
}
