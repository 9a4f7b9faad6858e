/*
 * xfer_int.h - what the client and the server of l1xfer share: one UCX
 * context and worker with the whole local pool registered (struct l1x_ucx),
 * a queue of received messages (the AM callback only copies a message in;
 * it is handled outside UCX's progress, where sending is safe), sending a
 * malloc'd message that is freed on completion, waiting on the worker's
 * event fd, host:port parsing, and the thread's error sentence.
 */
#ifndef L1XFER_INT_H
#define L1XFER_INT_H

#include <stddef.h>
#include <sys/socket.h>
#include <ucp/api/ucp.h>
#include "l1xfer.h"
#include "wire.h"

struct l1x_msg {
	struct l1x_msg *next;
	size_t len;                     /* bytes from hdr on */
	ucp_ep_h reply_ep;              /* the endpoint it came on (server side) */
	struct l1x_hdr hdr;
	unsigned char body[];           /* right after hdr, as sent */
};

struct l1x_queue {
	struct l1x_msg *head, *tail;
	uint64_t dropped;               /* malformed messages */
};

struct l1x_ucx {
	ucp_context_h ctx;
	ucp_worker_h worker;
	ucp_mem_h memh;                 /* the whole vm space of the pool */
	void *base;
	uint64_t size;
	int efd;
	struct l1x_queue inbox;
};

/* Sets this thread's sentence; returns err (a negative errno). */
int l1x_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int l1x_errno(ucs_status_t st);
uint64_t l1x_now_ns(void);      /* CLOCK_MONOTONIC */

/* UCX context + worker (RMA, AM, wakeup) with the pool's vm space mapped. */
int l1x_ucx_init(struct l1x_ucx *u, struct l1_arena *a);
void l1x_ucx_fini(struct l1x_ucx *u);
/* Sleeps until the worker has events, at most ms. */
void l1x_ucx_wait(struct l1x_ucx *u, int ms);
/* Takes the first queued message (NULL if none). */
struct l1x_msg *l1x_queue_pop(struct l1x_queue *q);
void l1x_queue_clear(struct l1x_queue *q);

/* A message: header filled, body of len bytes after it (zeroed). */
struct l1x_hdr *l1x_msg_new(uint16_t type, uint32_t conn, uint32_t req,
			    uint32_t count, size_t body);
/* Sends it (eager AM) and frees it once UCX is done with it (also on error). */
int l1x_send(ucp_ep_h ep, struct l1x_hdr *h, size_t body);
/* Blocks until a flush or close request completes; its status. */
ucs_status_t l1x_wait_req(struct l1x_ucx *u, ucs_status_ptr_t req);

/* "HOST:PORT" into a sockaddr; -EINVAL / -ENOENT with a sentence. */
int l1x_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* "IP:PORT" of a sockaddr. */
void l1x_addr_str(const struct sockaddr_storage *ss, char *buf, size_t len);

#endif
