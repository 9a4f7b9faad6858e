/*
 * keyname.c - names of the entries in keys/ and objects/.  A key is up to
 * L1_KEY_MAX bytes of anything but NUL, a file name is up to NAME_MAX bytes
 * of anything but '/' and NUL, so keys are encoded reversibly:
 *
 *   - bytes 0x21..0x7e stay as they are, except '/', '%', and an '@' in
 *     first place; every other byte (and those) becomes %XX (upper-case hex);
 *     a key that is exactly "." or ".." has its dots encoded as %2E;
 *   - if that is longer than NAME_MAX (255), the name is '@' followed by the
 *     whole key in lower-case hex (at most 254 digits for 127 bytes).
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

static int raw_ok(unsigned char c, size_t pos)
{
	if (c < 0x21 || c > 0x7e)
		return 0;
	if (c == '/' || c == '%')
		return 0;
	if (c == '@' && pos == 0)
		return 0;
	return 1;
}

int l1fs_key_encode(const char *key, char *name, size_t len)
{
	static const char hex_up[] = "0123456789ABCDEF";
	static const char hex_lo[] = "0123456789abcdef";
	size_t klen = strnlen(key, L1_KEY_MAX + 1);
	size_t o = 0;

	if (klen == 0 || klen > L1_KEY_MAX)
		return -ENAMETOOLONG;
	int dots = (strcmp(key, ".") == 0 || strcmp(key, "..") == 0);
	for (size_t i = 0; i < klen; i++) {
		unsigned char c = (unsigned char)key[i];
		if (raw_ok(c, i) && !dots) {
			if (o + 1 >= len)
				goto hex;
			name[o++] = (char)c;
		} else {
			if (o + 3 >= len || o + 3 > NAME_MAX_BYTES)
				goto hex;
			name[o++] = '%';
			name[o++] = hex_up[c >> 4];
			name[o++] = hex_up[c & 15];
		}
		if (o > NAME_MAX_BYTES)
			goto hex;
	}
	name[o] = '\0';
	return (int)o;
hex:
	if (1 + 2 * klen >= len || 1 + 2 * klen > NAME_MAX_BYTES)
		return -ENAMETOOLONG;
	o = 0;
	name[o++] = '@';
	for (size_t i = 0; i < klen; i++) {
		unsigned char c = (unsigned char)key[i];
		name[o++] = hex_lo[c >> 4];
		name[o++] = hex_lo[c & 15];
	}
	name[o] = '\0';
	return (int)o;
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
