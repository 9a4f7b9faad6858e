/*
 * keyname.c - names of the entries in keys/ and objects/.  A key is up to
 * L1_KEY_MAX bytes of anything but NUL, a file name is up to NAME_MAX bytes
 * of anything but '/' and NUL, so keys are encoded reversibly by
 * l1_key_view_name (arena/viewname.c, where the rule is written down).
 *
 * Decoding accepts only the canonical name of a key (decode, re-encode,
 * compare), so a key has exactly one name and `ls keys/` never shows two
 * spellings of one key.  Object names are canonical decimal ids.
 * Pure functions, no state.
 */
#include "l1fs.h"

#include <errno.h>
#include <string.h>

#define NAME_MAX_BYTES 255

/* The library's encoder (arena/viewname.c): one rule for every tool. */
int l1fs_key_encode(const char *key, char *name, size_t len)
{
	return l1_key_view_name(key, name, len);
}

static int hexval(char c, int upper)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (upper && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (!upper && c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int l1fs_key_decode(const char *name, char *key, size_t len)
{
	size_t nlen = strnlen(name, NAME_MAX_BYTES + 1);
	size_t o = 0;
	char again[NAME_MAX_BYTES + 2];

	if (nlen == 0 || nlen > NAME_MAX_BYTES || len < 2)
		return -ENOENT;
	if (name[0] == '@') {
		if ((nlen - 1) % 2 || nlen < 3)
			return -ENOENT;
		for (size_t i = 1; i < nlen; i += 2) {
			int h = hexval(name[i], 0), l = hexval(name[i + 1], 0);
			if (h < 0 || l < 0 || o + 1 >= len || (h | l) == 0)
				return -ENOENT;
			key[o++] = (char)(h << 4 | l);
		}
	} else {
		for (size_t i = 0; i < nlen; i++) {
			char c = name[i];
			if (c == '%') {
				if (i + 2 >= nlen)
					return -ENOENT;
				int h = hexval(name[i + 1], 1), l = hexval(name[i + 2], 1);
				if (h < 0 || l < 0 || (h | l) == 0)
					return -ENOENT;
				c = (char)(h << 4 | l);
				i += 2;
			}
			if (o + 1 >= len)
				return -ENOENT;
			key[o++] = c;
		}
	}
	key[o] = '\0';
	if (o > L1_KEY_MAX)
		return -ENOENT;
	/* canonical spelling only */
	if (l1fs_key_encode(key, again, sizeof again) < 0 || strcmp(again, name))
		return -ENOENT;
	return (int)o;
}

int l1fs_parse_id(const char *name, uint64_t *id)
{
	uint64_t v = 0;

	if (!name[0] || (name[0] == '0' && name[1]))
		return -ENOENT;
	for (const char *p = name; *p; p++) {
		if (*p < '0' || *p > '9')
			return -ENOENT;
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ENOENT;
		v = v * 10 + d;
	}
	*id = v;
	return 0;
}
