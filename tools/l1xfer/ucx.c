/*
 * ucx.c - the UCX plumbing both ends of l1xfer share: a context with RMA,
 * active messages and wakeup, one worker (serialized: one thread at a time),
 * the whole vm space of the local pool mapped once with ucp_mem_map (the
 * memh every get and put names, and the one rkey a server packs), the inbox
 * the AM callback copies messages into, sending messages that free
 * themselves on completion, and the thread's error sentence.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "xfer_int.h"

static __thread char err_buf[512];

const char *l1_xfer_last_error(void)
{
	return err_buf;
}

int l1x_fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof err_buf, fmt, ap);
	va_end(ap);
	return err;
}

int l1x_errno(ucs_status_t st)
{
	switch (st) {
	case UCS_OK: return 0;
	case UCS_ERR_UNREACHABLE: return -EHOSTUNREACH;
	case UCS_ERR_CONNECTION_RESET: return -ECONNRESET;
	case UCS_ERR_ENDPOINT_TIMEOUT:
	case UCS_ERR_TIMED_OUT: return -ETIMEDOUT;
	case UCS_ERR_REJECTED: return -ECONNREFUSED;
	case UCS_ERR_NO_MEMORY: return -ENOMEM;
	case UCS_ERR_CANCELED: return -ECANCELED;
	case UCS_ERR_BUSY: return -EBUSY;
	case UCS_ERR_INVALID_PARAM: return -EINVAL;
	case UCS_ERR_NO_DEVICE: return -ENODEV;
	case UCS_ERR_UNSUPPORTED: return -ENOTSUP;
	case UCS_ERR_NOT_CONNECTED: return -ENOTCONN;
	default: return -EIO;
	}
}

uint64_t l1x_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static ucs_status_t am_recv(void *arg, const void *header, size_t hlen, void *data,
			    size_t len, const ucp_am_recv_param_t *param)
{
	struct l1x_queue *q = arg;
	struct l1x_hdr h;               /* UCX's data need not be aligned: copied */
	struct l1x_msg *m;
	(void)header;
	(void)hlen;
	if (len >= sizeof h)
		memcpy(&h, data, sizeof h);
	if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) || len < sizeof h ||
	    h.magic != L1X_MAGIC || h.version != L1X_VERSION) {
		q->dropped++;
		return UCS_OK;
	}
	m = malloc(offsetof(struct l1x_msg, hdr) + len);
	if (!m) {
		q->dropped++;
		return UCS_OK;
	}
	memcpy(&m->hdr, data, len);
	m->len = len;
	m->next = NULL;
	m->reply_ep = (param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) ? param->reply_ep : NULL;
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	return UCS_OK;
}

struct l1x_msg *l1x_queue_pop(struct l1x_queue *q)
{
	struct l1x_msg *m = q->head;
	if (m) {
		q->head = m->next;
		if (!q->head)
			q->tail = NULL;
	}
	return m;
}

void l1x_queue_clear(struct l1x_queue *q)
{
	struct l1x_msg *m;
	while ((m = l1x_queue_pop(q)))
		free(m);
}

int l1x_ucx_init(struct l1x_ucx *u, struct l1_arena *a)
{
	ucp_params_t p = {
		.field_mask = UCP_PARAM_FIELD_FEATURES,
		.features = UCP_FEATURE_RMA | UCP_FEATURE_AM | UCP_FEATURE_WAKEUP,
	};
	ucp_worker_params_t wp = {
		.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
		.thread_mode = UCS_THREAD_MODE_SERIALIZED,
	};
	ucp_am_handler_param_t hp = {
		.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
			      UCP_AM_HANDLER_PARAM_FIELD_ARG | UCP_AM_HANDLER_PARAM_FIELD_FLAGS,
		.id = L1X_AM_ID,
		.flags = UCP_AM_FLAG_WHOLE_MSG,
		.cb = am_recv,
	};
	struct l1_vm_space vm;
	ucp_config_t *cfg;
	ucs_status_t st;
	int r;

	memset(u, 0, sizeof *u);
	u->efd = -1;
	r = l1_get_vm_space(a, &vm);
	if (r)
		return l1x_fail(r, "cannot get the pool's vm space: %s", l1_last_error());
	st = ucp_config_read(NULL, NULL, &cfg);
	if (st != UCS_OK)
		return l1x_fail(l1x_errno(st), "UCX configuration: %s (check the UCX_* variables)",
				ucs_status_string(st));
	st = ucp_init(&p, cfg, &u->ctx);
	ucp_config_release(cfg);
	if (st != UCS_OK)
		return l1x_fail(l1x_errno(st), "UCX init failed: %s (UCX_TLS names no usable transport?)",
				ucs_status_string(st));
	st = ucp_worker_create(u->ctx, &wp, &u->worker);
	if (st != UCS_OK) {
		r = l1x_fail(l1x_errno(st), "UCX worker: %s", ucs_status_string(st));
		goto out_ctx;
	}
	st = ucp_worker_get_efd(u->worker, &u->efd);
	if (st != UCS_OK) {
		r = l1x_fail(l1x_errno(st), "UCX worker event fd: %s", ucs_status_string(st));
		goto out_worker;
	}
	hp.arg = &u->inbox;
	st = ucp_worker_set_am_recv_handler(u->worker, &hp);
	if (st != UCS_OK) {
		r = l1x_fail(l1x_errno(st), "UCX AM handler: %s", ucs_status_string(st));
		goto out_worker;
	}
	/* Once, over the whole mapping: objects never need registering again. */
	ucp_mem_map_params_t mp = {
		.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH,
		.address = vm.base,
		.length = vm.size,
	};
	st = ucp_mem_map(u->ctx, &mp, &u->memh);
	if (st != UCS_OK) {
		r = l1x_fail(l1x_errno(st), "registering the pool (%llu bytes at %p) with UCX failed: %s",
			     (unsigned long long)vm.size, vm.base, ucs_status_string(st));
		goto out_worker;
	}
	u->base = vm.base;
	u->size = vm.size;
	return 0;

out_worker:
	ucp_worker_destroy(u->worker);
	u->worker = NULL;
out_ctx:
	ucp_cleanup(u->ctx);
	u->ctx = NULL;
	return r;
}

void l1x_ucx_fini(struct l1x_ucx *u)
{
	l1x_queue_clear(&u->inbox);
	if (u->memh)
		ucp_mem_unmap(u->ctx, u->memh);
	if (u->worker)
		ucp_worker_destroy(u->worker);
	if (u->ctx)
		ucp_cleanup(u->ctx);
	memset(u, 0, sizeof *u);
	u->efd = -1;
}

void l1x_ucx_wait(struct l1x_ucx *u, int ms)
{
	struct pollfd p = { .fd = u->efd, .events = POLLIN };
	if (ucp_worker_arm(u->worker) == UCS_ERR_BUSY)
		return;
	poll(&p, 1, ms);
}

struct l1x_hdr *l1x_msg_new(uint16_t type, uint32_t conn, uint32_t req, uint32_t count,
			    size_t body)
{
	struct l1x_hdr *h = calloc(1, sizeof *h + body);
	if (!h)
		return NULL;
	h->magic = L1X_MAGIC;
	h->version = L1X_VERSION;
	h->type = type;
	h->conn = conn;
	h->req = req;
	h->count = count;
	return h;
}

static void send_done(void *req, ucs_status_t st, void *user)
{
	(void)st;
	free(user);
	ucp_request_free(req);
}

int l1x_send(ucp_ep_h ep, struct l1x_hdr *h, size_t body)
{
	ucp_request_param_t p = {
		.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
				UCP_OP_ATTR_FIELD_FLAGS,
		.cb.send = send_done,
		.user_data = h,
		.flags = UCP_AM_SEND_FLAG_EAGER | UCP_AM_SEND_FLAG_REPLY,
	};
	ucs_status_ptr_t r = ucp_am_send_nbx(ep, L1X_AM_ID, NULL, 0, h, sizeof *h + body, &p);
	if (r == NULL) {
		free(h);
		return 0;
	}
	if (UCS_PTR_IS_ERR(r)) {
		free(h);
		return l1x_fail(l1x_errno(UCS_PTR_STATUS(r)), "sending to the peer failed: %s",
				ucs_status_string(UCS_PTR_STATUS(r)));
	}
	return 0;
}

ucs_status_t l1x_wait_req(struct l1x_ucx *u, ucs_status_ptr_t req)
{
	ucs_status_t st;
	if (req == NULL)
		return UCS_OK;
	if (UCS_PTR_IS_ERR(req))
		return UCS_PTR_STATUS(req);
	while ((st = ucp_request_check_status(req)) == UCS_INPROGRESS)
		ucp_worker_progress(u->worker);
	ucp_request_free(req);
	return st;
}

int l1x_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *colon = s ? strrchr(s, ':') : NULL;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	char *end;
	long port;
	int r;

	if (!colon || colon == s || (size_t)(colon - s) >= sizeof host)
		return l1x_fail(-EINVAL, "'%s' is not HOST:PORT (e.g. 10.0.0.1:13337)",
				s ? s : "(null)");
	port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 0 || port > 65535)
		return l1x_fail(-EINVAL, "'%s': the port must be a number from 0 to 65535", s);
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {  /* [::1]:port */
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	r = getaddrinfo(host, NULL, &hints, &res);
	if (r || !res)
		return l1x_fail(-ENOENT, "cannot resolve '%s': %s", host, gai_strerror(r));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	return 0;
}

void l1x_addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
		port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in = (const void *)ss;
		inet_ntop(AF_INET6, &in->sin6_addr, ip, sizeof ip);
		port = ntohs(in->sin6_port);
	}
	snprintf(buf, len, "%s:%d", ip, port);
}
