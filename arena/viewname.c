/*
 * viewname.c - the name a key has in an l1fs view's keys/ directory.  A key
 * is up to L1_KEY_MAX bytes of anything but NUL, a file name up to 255 bytes
 * of anything but '/' and NUL, so keys are encoded reversibly:
 *
 *   - bytes 0x21..0x7e stay as they are, except '/', '%', and an '@' in
 *     first place; every other byte (and those) becomes %XX (upper-case hex);
 *     a key that is exactly "." or ".." has its dots encoded as %2E;
 *   - if that is longer than 255 bytes, the name is '@' followed by the
 *     whole key in lower-case hex (at most 254 digits for 127 bytes).
 *
 * One encoder for l1fs (which also decodes, in fuse/keyname.c), l1ctl and
 * the demo workload, so they cannot disagree.  A pure function, no state.
 */
#include <errno.h>
#include <string.h>

#include "l1arena.h"

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

int l1_key_view_name(const char *key, char *name, size_t len)
{
	static const char hex_up[] = "0123456789ABCDEF";
	static const char hex_lo[] = "0123456789abcdef";
	size_t klen = key ? strnlen(key, L1_KEY_MAX + 1) : 0;
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
