/*
 * wire.h - the messages l1xfer peers exchange as UCX active messages (one AM
 * id, always sent eager so a message arrives whole).  Every message starts
 * with struct l1x_hdr (magic, version, type); the body is an array of
 * fixed-width records.  Both ends are the same build of the same format on
 * little-endian hosts: the version is checked at hello, the layout travels
 * as struct l1_layout (fixed-width by construction, asserted below).  The
 * bytes of objects never travel in messages: they move with one-sided
 * ucp_get_nbx / ucp_put_nbx between the two registered pools.
 */
#ifndef L1XFER_WIRE_H
#define L1XFER_WIRE_H

#include <assert.h>
#include <stdint.h>
#include "l1arena.h"

#define L1X_MAGIC 0x4c315846u           /* "L1XF" */
#define L1X_VERSION 1
#define L1X_AM_ID 17
#define L1X_KEY_SLOT 128                /* L1_KEY_MAX + NUL */
#define L1X_LIST_PAGE 512               /* keys per list reply */

/* Every message is sent with UCP_AM_SEND_FLAG_REPLY: the server knows the
 * peer by the endpoint a message came on. */
enum l1x_type {
	L1X_HELLO = 1,          /* c->s: nothing */
	L1X_HELLO_REPLY,        /* s->c: arg = remote base, count = rkey bytes,
				 * body: u64 pool_id, then the packed rkey */
	L1X_LOOKUP,             /* c->s: count x key slot; holds each object */
	L1X_LOOKUP_REPLY,       /* s->c: count x l1x_entry */
	L1X_DONE,               /* c->s: count x u64 id; releases those holds */
	L1X_LIST,               /* c->s: arg = cursor, body: prefix slot */
	L1X_LIST_REPLY,         /* s->c: arg = next cursor, status 1 at the end,
				 * count x key slot */
	L1X_ALLOC,              /* c->s: count x l1x_want; all or nothing */
	L1X_ALLOC_REPLY,        /* s->c: count x l1x_entry */
	L1X_COMMIT,             /* c->s: count x l1x_want (id + key): publish */
	L1X_COMMIT_REPLY,       /* s->c: count x int32 status */
	L1X_BYE,                /* c->s: closing; whatever is still held goes */
	L1X_TYPE_END
};

struct l1x_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;          /* enum l1x_type */
	uint32_t conn;          /* the server's id for this connection */
	uint32_t req;           /* request id, echoed in the reply */
	uint32_t count;         /* records in the body */
	int32_t status;         /* 0 or a negative errno (whole request) */
	uint64_t arg;
};
static_assert(sizeof(struct l1x_hdr) == 32, "l1x_hdr is 32 bytes");

/* One object as the source (get) or the destination (put) sees it. */
struct l1x_entry {
	int32_t status;         /* 0, -ENOENT (no such key), -EEXIST, ... */
	uint32_t reserved;
	uint64_t id;
	uint64_t offset;        /* from the base of the peer's vm space */
	uint64_t size;          /* the object's size there (rounded to its align) */
	uint64_t bytes;         /* the layout's bytes: what moves */
	struct l1_layout layout;
};
static_assert(sizeof(struct l1_layout) == 296, "struct l1_layout is fixed-width");
static_assert(sizeof(struct l1x_entry) == 336, "l1x_entry is 336 bytes");

/* What a put wants the peer to allocate (id 0), or to publish (commit;
 * cancel = 1: the write failed, free it instead). */
struct l1x_want {
	uint64_t id;
	uint64_t cancel;
	char key[L1X_KEY_SLOT];
	struct l1_layout layout;
};
static_assert(sizeof(struct l1x_want) == 440, "l1x_want is 440 bytes");

#endif
