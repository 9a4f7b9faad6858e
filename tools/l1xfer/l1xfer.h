/*
 * l1xfer.h - pool-to-pool transfer of l1arena objects over UCX: the C API
 * behind the l1xfer tool and the Python binding (tools/python/l1arena/xfer.py
 * loads libl1xfer.so with ctypes).  A server attaches a pool, registers its
 * whole vm space with UCX once (ucp_mem_map over l1_get_vm_space) and answers
 * lookups of keys: it holds each object it names (l1_hold) until the peer
 * says it is done or the peer's endpoint fails, so a key freed on the server
 * between lookup and read never hands out another object's bytes.  A client
 * allocates the missing objects in its own pool (all or nothing per chunk),
 * reads them with one-sided ucp_get_nbx straight from the remote pool into
 * the local objects, and publishes each under its key only once every byte
 * of its chunk has arrived; on any failure the chunk's objects are freed
 * unpublished.  put is the same the other way: the server allocates, the
 * client writes with ucp_put_nbx, flushes, and asks the server to publish.
 * The transport is whatever UCX selects (UCX_TLS): RDMA on InfiniBand or
 * RoCE, TCP and shared memory here; the code path is the same.
 *
 * Conventions as in l1arena.h: 0 (or a count) or a negative errno;
 * l1_xfer_last_error() is the calling thread's sentence about the last
 * failure.  A connection or a server is used by one thread at a time.
 */
#ifndef L1XFER_H
#define L1XFER_H

#include <signal.h>
#include <stdint.h>
#include "l1arena.h"

#ifdef __cplusplus
extern "C" {
#endif

struct l1_xfer;                 /* a connection to a peer (client side) */
struct l1_xfer_server;

struct l1_xfer_stats {
	uint64_t requested;     /* keys asked for */
	uint64_t moved;         /* objects transferred and published */
	uint64_t present;       /* already there: skipped */
	uint64_t missing;       /* not published at the source */
	uint64_t failed;        /* not moved: the peer failed, no room, ... */
	uint64_t bytes;         /* payload bytes moved */
	uint64_t ns;            /* wall time of the call */
};

/* Called about every 0.5 s during a long transfer (and not at all for a
 * short one) with the counts so far. */
typedef void (*l1_xfer_progress_fn)(const struct l1_xfer_stats *s, void *arg);

const char *l1_xfer_last_error(void);

/* Connects to a server at "HOST:PORT" (IPv4 or a name) on behalf of the
 * local pool.  -ECONNREFUSED / -EHOSTUNREACH / -ETIMEDOUT with a sentence. */
int l1_xfer_connect(struct l1_arena *local, const char *peer, struct l1_xfer **out);
/* Keys per lookup and allocation chunk (default 256, 1..4096). */
int l1_xfer_set_chunk(struct l1_xfer *x, uint32_t keys);
void l1_xfer_set_progress(struct l1_xfer *x, l1_xfer_progress_fn fn, void *arg);
/* Fetches n keys from the peer into the local pool.  Returns 0 when every key
 * is now published locally (moved or present), else a negative errno with
 * the counts in *st (which may be NULL) and a sentence. */
int l1_xfer_get(struct l1_xfer *x, const char *const *keys, uint32_t n,
		struct l1_xfer_stats *st);
/* Fetches every key the peer has published that starts with prefix. */
int l1_xfer_get_prefix(struct l1_xfer *x, const char *prefix, struct l1_xfer_stats *st);
/* Pushes n locally published keys into the peer's pool; keys the peer has
 * already are skipped (present). */
int l1_xfer_put(struct l1_xfer *x, const char *const *keys, uint32_t n,
		struct l1_xfer_stats *st);
/* Lists the peer's published keys that start with prefix: a malloc'd array
 * of malloc'd strings in *keys (free with l1_xfer_keys_free); returns the
 * count. */
int l1_xfer_list(struct l1_xfer *x, const char *prefix, char ***keys);
void l1_xfer_keys_free(char **keys, uint32_t n);
/* The transports UCX chose for this connection, e.g. "tcp" or "rc_mlx5, sm". */
const char *l1_xfer_transport(struct l1_xfer *x);
void l1_xfer_close(struct l1_xfer *x);

/* Serves the pool at "ADDR:PORT" (PORT 0: any; see l1_xfer_server_port). */
int l1_xfer_server_start(struct l1_arena *a, const char *listen,
			 struct l1_xfer_server **out);
int l1_xfer_server_port(struct l1_xfer_server *s);
/* Runs the event loop until *stop becomes non-zero (checked at least every
 * 200 ms); sleeps in the kernel while nothing happens. */
int l1_xfer_server_run(struct l1_xfer_server *s, volatile sig_atomic_t *stop);
/* Holds the server has for its peers now (for tests and the log). */
uint64_t l1_xfer_server_holds(struct l1_xfer_server *s);
/* Closes every connection, releasing its holds and freeing what a put left
 * unpublished, then the listener, the registration and UCX. */
void l1_xfer_server_close(struct l1_xfer_server *s);

#ifdef __cplusplus
}
#endif
#endif
