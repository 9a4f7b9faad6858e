/*
 * server.c - the serving end of l1xfer.  One thread runs the UCX worker: it
 * accepts connections from the listener, and for each peer keeps the ids it
 * holds in the pool for that peer (lookups) and the ids it allocated for it
 * but has not published yet (puts).  A hold is taken before the lookup
 * reply goes out and released only on the peer's DONE or when its endpoint
 * fails (UCP_ERR_HANDLING_MODE_PEER), so the bytes the peer reads are the
 * object it was told about even if the key is freed meanwhile.  A dead
 * peer's unpublished allocations are freed.  If the server itself dies, the
 * pool's gc drops its holds and frees its unpublished objects (backstop).
 * Messages are handled in the loop, outside UCX's callbacks.
 */
#include <errno.h>
#include <stdarg.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xfer_int.h"

struct idvec {
	uint64_t *v;
	uint32_t n, cap;
};

struct conn {
	struct conn *next;
	struct l1_xfer_server *s;
	ucp_ep_h ep;
	uint32_t id;
	int dead;
	ucs_status_t why;
	struct idvec held;              /* holds taken for this peer */
	struct idvec pending;           /* allocated for its put, unpublished */
	char peer[64];
};

#define MAX_CONN_REQS 64

struct l1_xfer_server {
	struct l1_arena *a;
	struct l1x_ucx u;
	ucp_listener_h listener;
	int port;
	struct conn *conns;
	uint32_t next_id;
	ucp_conn_request_h reqs[MAX_CONN_REQS];
	uint32_t nreqs;
	void *rkey;
	size_t rkey_len;
	uint64_t holds;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	fputs("l1xfer serve: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int idvec_push(struct idvec *v, uint64_t id)
{
	if (v->n == v->cap) {
		uint32_t cap = v->cap ? v->cap * 2 : 256;
		uint64_t *p = realloc(v->v, cap * sizeof *p);
		if (!p)
			return -ENOMEM;
		v->v = p;
		v->cap = cap;
	}
	v->v[v->n++] = id;
	return 0;
}

/* Removes one occurrence of id (searching from the end: DONE follows the
 * lookup order closely); 0 if it was there. */
static int idvec_take(struct idvec *v, uint64_t id)
{
	for (uint32_t i = v->n; i-- > 0;)
		if (v->v[i] == id) {
			v->v[i] = v->v[--v->n];
			return 0;
		}
	return -ENOENT;
}

static void conn_error(void *arg, ucp_ep_h ep, ucs_status_t st)
{
	struct conn *c = arg;
	(void)ep;
	c->dead = 1;
	c->why = st;
}

static void conn_request(ucp_conn_request_h req, void *arg)
{
	struct l1_xfer_server *s = arg;
	if (s->nreqs == MAX_CONN_REQS) {
		ucp_listener_reject(s->listener, req);
		return;
	}
	s->reqs[s->nreqs++] = req;
}

static void accept_one(struct l1_xfer_server *s, ucp_conn_request_h req)
{
	ucp_conn_request_attr_t at = { .field_mask = UCP_CONN_REQUEST_ATTR_FIELD_CLIENT_ADDR };
	struct conn *c = calloc(1, sizeof *c);
	ucs_status_t st;
	if (!c) {
		ucp_listener_reject(s->listener, req);
		return;
	}
	if (ucp_conn_request_query(req, &at) == UCS_OK)
		l1x_addr_str(&at.client_address, c->peer, sizeof c->peer);
	else
		snprintf(c->peer, sizeof c->peer, "?");
	ucp_ep_params_t ep = {
		.field_mask = UCP_EP_PARAM_FIELD_CONN_REQUEST | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
			      UCP_EP_PARAM_FIELD_ERR_HANDLER,
		.conn_request = req,
		.err_mode = UCP_ERR_HANDLING_MODE_PEER,
		.err_handler = { .cb = conn_error, .arg = c },
	};
	st = ucp_ep_create(s->u.worker, &ep, &c->ep);
	if (st != UCS_OK) {
		say("cannot accept %s: %s", c->peer, ucs_status_string(st));
		free(c);
		return;
	}
	c->s = s;
	c->id = ++s->next_id;
	c->next = s->conns;
	s->conns = c;
	say("peer %s connected", c->peer);
}

/* Releases what a peer had: holds, and objects allocated for it that it
 * never got published. */
static void conn_drop(struct l1_xfer_server *s, struct conn *c, const char *why)
{
	uint32_t holds = c->held.n, unpub = c->pending.n;
	for (uint32_t i = 0; i < c->held.n; i++)
		if (l1_release(s->a, c->held.v[i]) == 0)
			s->holds--;
	for (uint32_t i = 0; i < c->pending.n; i++)
		l1_free_ids(s->a, &c->pending.v[i], 1);
	if (holds || unpub)
		say("peer %s %s: released %u holds, freed %u unpublished objects", c->peer, why,
		    holds, unpub);
	else
		say("peer %s %s", c->peer, why);
	ucp_request_param_t p = { .op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
				  .flags = UCP_EP_CLOSE_FLAG_FORCE };
	l1x_wait_req(&s->u, ucp_ep_close_nbx(c->ep, &p));
	free(c->held.v);
	free(c->pending.v);
	free(c);
}

static void reap(struct l1_xfer_server *s)
{
	for (struct conn **pp = &s->conns; *pp;) {
		struct conn *c = *pp;
		if (!c->dead) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		char why[128];
		if (c->why == UCS_OK)
			snprintf(why, sizeof why, "disconnected");
		else
			snprintf(why, sizeof why, "went away (%s)", ucs_status_string(c->why));
		conn_drop(s, c, why);
	}
}

static void key_of(char *dst, const char *slot)
{
	memcpy(dst, slot, L1X_KEY_SLOT);
	dst[L1X_KEY_SLOT - 1] = 0;
}

static void fill_entry(struct l1_xfer_server *s, const struct l1_obj *o, struct l1x_entry *e)
{
	e->id = o->id;
	e->offset = o->offset;
	e->size = o->size;
	e->status = l1_arena_layout(s->a, o->layout_id, &e->layout);
	if (!e->status)
		e->status = l1_layout_bytes(&e->layout, &e->bytes);
}

static void on_lookup(struct l1_xfer_server *s, struct conn *c, const struct l1x_hdr *h)
{
	const char *keys = (const char *)(h + 1);
	struct l1x_hdr *r = l1x_msg_new(L1X_LOOKUP_REPLY, c->id, h->req, h->count,
					(size_t)h->count * sizeof(struct l1x_entry));
	struct l1x_entry *e = (struct l1x_entry *)(r + 1);
	char key[L1X_KEY_SLOT];
	struct l1_obj o;
	if (!r)
		return;
	for (uint32_t i = 0; i < h->count; i++) {
		key_of(key, keys + (size_t)i * L1X_KEY_SLOT);
		e[i].status = l1_hold_key(s->a, key, &o);
		if (e[i].status)
			continue;
		if (idvec_push(&c->held, o.id)) {
			l1_release(s->a, o.id);
			e[i].status = -ENOMEM;
			continue;
		}
		s->holds++;
		fill_entry(s, &o, &e[i]);
	}
	l1x_send(c->ep, r, (size_t)h->count * sizeof *e);
}

static void on_done(struct l1_xfer_server *s, struct conn *c, const struct l1x_hdr *h)
{
	const uint64_t *ids = (const uint64_t *)(h + 1);
	for (uint32_t i = 0; i < h->count; i++)
		if (idvec_take(&c->held, ids[i]) == 0 && l1_release(s->a, ids[i]) == 0)
			s->holds--;
}

static void on_list(struct l1_xfer_server *s, struct conn *c, const struct l1x_hdr *h)
{
	struct l1x_hdr *r = l1x_msg_new(L1X_LIST_REPLY, c->id, h->req, 0,
					(size_t)L1X_LIST_PAGE * L1X_KEY_SLOT);
	char prefix[L1X_KEY_SLOT];
	struct l1_obj_info info[64];
	uint64_t cursor = h->arg;
	size_t plen;
	int n;
	if (!r)
		return;
	key_of(prefix, (const char *)(h + 1));
	plen = strlen(prefix);
	char *out = (char *)(r + 1);
	/* up to a page of keys; the cursor stops before a batch that would not fit */
	while (r->count + 64 <= L1X_LIST_PAGE) {
		n = l1_obj_list(s->a, &cursor, info, 64);
		if (n <= 0) {
			r->status = n < 0 ? n : 1;
			break;
		}
		for (int i = 0; i < n; i++)
			if (info[i].state == L1_STATE_PUBLISHED && info[i].key[0] &&
			    !strncmp(info[i].key, prefix, plen))
				memcpy(out + (size_t)r->count++ * L1X_KEY_SLOT, info[i].key,
				       L1X_KEY_SLOT);
	}
	r->arg = cursor;
	l1x_send(c->ep, r, (size_t)r->count * L1X_KEY_SLOT);
}

/* put, step 1: allocate what the peer wants to write, all or nothing. */
static void on_alloc(struct l1_xfer_server *s, struct conn *c, const struct l1x_hdr *h)
{
	const struct l1x_want *w = (const struct l1x_want *)(h + 1);
	struct l1x_hdr *r = l1x_msg_new(L1X_ALLOC_REPLY, c->id, h->req, h->count,
					(size_t)h->count * sizeof(struct l1x_entry));
	struct l1x_entry *e = (struct l1x_entry *)(r + 1);
	struct l1_obj o, *objs = calloc(h->count ? h->count : 1, sizeof *objs);
	char key[L1X_KEY_SLOT];
	uint32_t *todo = calloc(h->count ? h->count : 1, sizeof *todo), ntodo = 0, done = 0;
	int err = 0;
	if (!r || !objs || !todo) {
		free(r);
		goto out;
	}
	for (uint32_t i = 0; i < h->count; i++) {
		key_of(key, w[i].key);
		if (l1_lookup(s->a, key, &o) == 0)
			e[i].status = -EEXIST;
		else
			todo[ntodo++] = i;
	}
	/* one l1_alloc per distinct layout; undo all of them on a failure */
	for (uint32_t k = 0; k < ntodo && !err; k++) {
		uint32_t i = todo[k], cnt = 0;
		if (objs[i].id)
			continue;
		struct l1_obj *batch = calloc(ntodo, sizeof *batch);
		if (!batch) {
			err = -ENOMEM;
			break;
		}
		for (uint32_t m = k; m < ntodo; m++)
			if (!memcmp(&w[todo[m]].layout, &w[i].layout, sizeof w[i].layout))
				cnt++;
		err = l1_alloc(s->a, &w[i].layout, cnt, batch);
		for (uint32_t m = k, b = 0; !err && m < ntodo; m++)
			if (!memcmp(&w[todo[m]].layout, &w[i].layout, sizeof w[i].layout))
				objs[todo[m]] = batch[b++];
		done += err ? 0 : cnt;
		free(batch);
	}
	for (uint32_t k = 0; k < ntodo; k++) {
		uint32_t i = todo[k];
		if (err) {
			if (objs[i].id)
				l1_free(s->a, &objs[i], 1);
			e[i].status = err;
			continue;
		}
		if (idvec_push(&c->pending, objs[i].id)) {
			l1_free(s->a, &objs[i], 1);
			e[i].status = -ENOMEM;
			continue;
		}
		fill_entry(s, &objs[i], &e[i]);
	}
	r->status = err;
	l1x_send(c->ep, r, (size_t)h->count * sizeof *e);
out:
	free(objs);
	free(todo);
}

/* put, step 2: the bytes are there (the peer flushed): publish. */
static void on_commit(struct l1_xfer_server *s, struct conn *c, const struct l1x_hdr *h)
{
	const struct l1x_want *w = (const struct l1x_want *)(h + 1);
	struct l1x_hdr *r = l1x_msg_new(L1X_COMMIT_REPLY, c->id, h->req, h->count,
					(size_t)h->count * sizeof(int32_t));
	int32_t *st = (int32_t *)(r + 1);
	char key[L1X_KEY_SLOT];
	if (!r)
		return;
	for (uint32_t i = 0; i < h->count; i++) {
		if (idvec_take(&c->pending, w[i].id)) {
			st[i] = -ENOENT;        /* not ours to publish */
			continue;
		}
		key_of(key, w[i].key);
		st[i] = w[i].cancel ? -ECANCELED : l1_publish(s->a, w[i].id, key);
		if (st[i])
			l1_free_ids(s->a, &w[i].id, 1);
	}
	l1x_send(c->ep, r, (size_t)h->count * sizeof *st);
}

static void on_hello(struct l1_xfer_server *s, struct conn *c, const struct l1x_hdr *h)
{
	struct l1_vm_space vm;
	struct l1x_hdr *r = l1x_msg_new(L1X_HELLO_REPLY, c->id, h->req, (uint32_t)s->rkey_len,
					8 + s->rkey_len);
	if (!r)
		return;
	l1_get_vm_space(s->a, &vm);
	r->arg = (uint64_t)(uintptr_t)s->u.base;
	memcpy(r + 1, &vm.pool_id, 8);
	memcpy((char *)(r + 1) + 8, s->rkey, s->rkey_len);
	l1x_send(c->ep, r, 8 + s->rkey_len);
}

/* Checks a message's size against its type: the body is count records. */
static int well_formed(const struct l1x_msg *m)
{
	size_t rec;
	switch (m->hdr.type) {
	case L1X_HELLO:
	case L1X_BYE: rec = 0; break;
	case L1X_LOOKUP: rec = L1X_KEY_SLOT; break;
	case L1X_DONE: rec = 8; break;
	case L1X_LIST: return m->len == sizeof m->hdr + L1X_KEY_SLOT;
	case L1X_ALLOC:
	case L1X_COMMIT: rec = sizeof(struct l1x_want); break;
	default: return 0;
	}
	return m->hdr.count <= 65536 && m->len == sizeof m->hdr + rec * m->hdr.count;
}

static void dispatch(struct l1_xfer_server *s, struct l1x_msg *m)
{
	struct conn *c = s->conns;
	/* the endpoint it came on names the peer; the id in the header must agree
	 * (hello comes before the peer knows its id) */
	while (c && c->ep != m->reply_ep)
		c = c->next;
	if (c && m->hdr.type != L1X_HELLO && m->hdr.conn != c->id)
		c = NULL;
	if (!c || c->dead || !well_formed(m)) {
		say("dropped a malformed message (type %u, conn %u)", m->hdr.type, m->hdr.conn);
		return;
	}
	switch (m->hdr.type) {
	case L1X_HELLO: on_hello(s, c, &m->hdr); break;
	case L1X_LOOKUP: on_lookup(s, c, &m->hdr); break;
	case L1X_DONE: on_done(s, c, &m->hdr); break;
	case L1X_LIST: on_list(s, c, &m->hdr); break;
	case L1X_ALLOC: on_alloc(s, c, &m->hdr); break;
	case L1X_COMMIT: on_commit(s, c, &m->hdr); break;
	case L1X_BYE: c->dead = 1; c->why = UCS_OK; break;
	}
}

int l1_xfer_server_start(struct l1_arena *a, const char *listen, struct l1_xfer_server **out)
{
	struct l1_xfer_server *s;
	struct sockaddr_storage ss;
	socklen_t slen;
	ucs_status_t st;
	int r;

	*out = NULL;
	r = l1x_parse_addr(listen, &ss, &slen);
	if (r)
		return r;
	s = calloc(1, sizeof *s);
	if (!s)
		return l1x_fail(-ENOMEM, "out of memory");
	s->a = a;
	r = l1x_ucx_init(&s->u, a);
	if (r)
		goto out_free;
	st = ucp_rkey_pack(s->u.ctx, s->u.memh, &s->rkey, &s->rkey_len);
	if (st != UCS_OK) {
		r = l1x_fail(l1x_errno(st), "packing the pool's remote key: %s", ucs_status_string(st));
		goto out_ucx;
	}
	ucp_listener_params_t lp = {
		.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER,
		.sockaddr = { .addr = (struct sockaddr *)&ss, .addrlen = slen },
		.conn_handler = { .cb = conn_request, .arg = s },
	};
	st = ucp_listener_create(s->u.worker, &lp, &s->listener);
	if (st != UCS_OK) {
		if (st == UCS_ERR_BUSY)
			r = l1x_fail(-EADDRINUSE, "cannot listen on %s: the address is in use "
				     "(another server there? PORT 0 takes any free port)", listen);
		else
			r = l1x_fail(l1x_errno(st), "cannot listen on %s: %s (not an address of this "
				     "host?)", listen, ucs_status_string(st));
		goto out_rkey;
	}
	ucp_listener_attr_t la = { .field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR };
	if (ucp_listener_query(s->listener, &la) == UCS_OK) {
		const struct sockaddr_in *in = (const void *)&la.sockaddr;
		s->port = ntohs(in->sin_port);      /* same place in sockaddr_in6 */
	}
	*out = s;
	return 0;

out_rkey:
	ucp_rkey_buffer_release(s->rkey);
out_ucx:
	l1x_ucx_fini(&s->u);
out_free:
	free(s);
	return r;
}

int l1_xfer_server_port(struct l1_xfer_server *s)
{
	return s ? s->port : -EINVAL;
}

uint64_t l1_xfer_server_holds(struct l1_xfer_server *s)
{
	return s ? s->holds : 0;
}

/* Progresses while there is work, and sleeps on the worker's event fd as
 * soon as there is none: spinning for the next request (1 ms was tried)
 * took the CPU the peer's side needed on a busy 2-core host and halved the
 * throughput there. */
int l1_xfer_server_run(struct l1_xfer_server *s, volatile sig_atomic_t *stop)
{
	struct l1x_msg *m;
	while (!*stop) {
		int busy = 0;
		while (ucp_worker_progress(s->u.worker))
			busy = 1;
		while (s->nreqs) {
			accept_one(s, s->reqs[--s->nreqs]);
			busy = 1;
		}
		while ((m = l1x_queue_pop(&s->u.inbox))) {
			dispatch(s, m);
			free(m);
			busy = 1;
		}
		reap(s);
		if (!busy)
			l1x_ucx_wait(&s->u, 200);
	}
	return 0;
}

void l1_xfer_server_close(struct l1_xfer_server *s)
{
	if (!s)
		return;
	while (s->conns) {
		struct conn *c = s->conns;
		s->conns = c->next;
		conn_drop(s, c, "closed (server stopping)");
	}
	while (s->nreqs)
		ucp_listener_reject(s->listener, s->reqs[--s->nreqs]);
	ucp_listener_destroy(s->listener);
	ucp_rkey_buffer_release(s->rkey);
	l1x_ucx_fini(&s->u);
	free(s);
}
