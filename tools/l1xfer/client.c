/*
 * client.c - the fetching (and pushing) end of l1xfer.  get works in chunks
 * of keys (default 256), several in flight: a lookup per chunk (the server
 * holds what it names), one l1_alloc per distinct layout in the chunk (all
 * or nothing), one ucp_get_nbx per object from the remote pool straight
 * into the local object (both pools registered once: no bounce buffer),
 * then DONE to the server and l1_publish of each object.  Nothing is
 * published before every read of its chunk has completed successfully; a
 * chunk that fails (peer gone, no room, bad reply) frees its objects
 * unpublished, so the local pool never shows a half-written object.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "xfer_int.h"

#define WINDOW 4                        /* chunks in flight */
#define REPLY_TIMEOUT_NS (60ull * 1000000000ull)

struct l1_xfer {
	struct l1_arena *a;
	struct l1x_ucx u;
	ucp_ep_h ep;
	ucp_rkey_h rkey;
	uint64_t rbase;
	uint64_t rpool;
	uint32_t conn;
	uint32_t next_req;
	int ep_failed;
	ucs_status_t ep_status;
	uint32_t chunk;
	l1_xfer_progress_fn progress;
	void *parg;
	const char *gate;               /* test hook: see gate_open() */
	uint32_t gate_chunk;
	char peer[280];
	char transport[160];
	char first_missing[L1X_KEY_SLOT];
};

enum { CH_FREE, CH_LOOKUP, CH_GATED, CH_READING };

struct chunk {
	int state;
	uint32_t index;                 /* chunk number in this call */
	uint32_t req;
	uint32_t first, n;              /* keys todo[first .. first + n) */
	struct l1x_msg *reply;
	struct l1_obj *objs;
	uint32_t pending;               /* reads in flight */
	int err;
	int said;                       /* err came with a sentence */
};

struct run {
	struct l1_xfer *x;
	const char *const *todo;
	struct l1_xfer_stats *st;
	uint64_t t0, last_report, last_activity;
	int err;                        /* the first failure */
	char why[512];                  /* and its sentence */
};

static void ep_error(void *arg, ucp_ep_h ep, ucs_status_t st)
{
	struct l1_xfer *x = arg;
	(void)ep;
	x->ep_failed = 1;
	x->ep_status = st;
}

static int peer_gone(struct l1_xfer *x)
{
	return l1x_fail(x->ep_status ? l1x_errno(x->ep_status) : -ECONNRESET,
			"the connection to %s failed: %s", x->peer,
			ucs_status_string(x->ep_status ? x->ep_status : UCS_ERR_CONNECTION_RESET));
}

/* Takes the queued reply to req, if it has come. */
static struct l1x_msg *take_reply(struct l1_xfer *x, uint32_t req)
{
	struct l1x_queue *q = &x->u.inbox;
	for (struct l1x_msg **pp = &q->head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
		struct l1x_msg *m = *pp;
		if (m->hdr.req != req)
			continue;
		*pp = m->next;
		if (q->tail == m)
			q->tail = prev;
		return m;
	}
	return NULL;
}

/* Waits for the reply to req: NULL with a sentence if the peer fails or
 * stays silent for a minute. */
static struct l1x_msg *wait_reply(struct l1_xfer *x, uint32_t req, uint16_t type, size_t rec,
				  size_t extra)
{
	uint64_t deadline = l1x_now_ns() + REPLY_TIMEOUT_NS;
	struct l1x_msg *m;
	for (;;) {
		while (ucp_worker_progress(x->u.worker))
			;
		if ((m = take_reply(x, req)))
			break;
		if (x->ep_failed) {
			peer_gone(x);
			return NULL;
		}
		if (l1x_now_ns() > deadline) {
			l1x_fail(-ETIMEDOUT, "%s did not answer within 60 s", x->peer);
			return NULL;
		}
		l1x_ucx_wait(&x->u, 100);
	}
	if (m->hdr.type != type || m->len != sizeof m->hdr + extra + rec * m->hdr.count) {
		l1x_fail(-EPROTO, "%s sent a malformed reply (type %u, %zu bytes)", x->peer,
			 m->hdr.type, m->len);
		free(m);
		return NULL;
	}
	return m;
}

static int send_msg(struct l1_xfer *x, struct l1x_hdr *h, size_t body)
{
	if (!h)
		return l1x_fail(-ENOMEM, "out of memory");
	if (x->ep_failed) {
		free(h);
		return peer_gone(x);
	}
	return l1x_send(x->ep, h, body);
}

/* "rma: tcp/veth0; am: tcp/veth0" from UCX's description of the endpoint. */
static void describe_transport(struct l1_xfer *x)
{
	char *buf = NULL, *line, *save = NULL;
	size_t len = 0;
	char rma[80] = "", am[80] = "";
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return;
	ucp_ep_print_info(x->ep, f);
	fclose(f);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *p = strstr(line, "lane["), *colon, name[48];
		if (!p || !(p = strchr(p, ':')) || !(colon = strchr(p + 1, ':')))
			continue;
		if (sscanf(colon + 1, "%47s", name) != 1)
			continue;
		for (int k = 0; k < 2; k++) {
			char *dst = k ? am : rma;
			if (!strstr(line, k ? " am " : " rma") || strstr(dst, name) ||
			    strlen(dst) + strlen(name) + 3 >= sizeof rma)
				continue;
			sprintf(dst + strlen(dst), "%s%s", *dst ? ", " : "", name);
		}
	}
	free(buf);
	snprintf(x->transport, sizeof x->transport, "rma: %s; am: %s", *rma ? rma : "?",
		 *am ? am : "?");
}

int l1_xfer_connect(struct l1_arena *local, const char *peer, struct l1_xfer **out)
{
	struct sockaddr_storage ss;
	socklen_t slen;
	struct l1_xfer *x;
	struct l1x_msg *m;
	ucs_status_t st;
	int r;

	*out = NULL;
	r = l1x_parse_addr(peer, &ss, &slen);
	if (r)
		return r;
	x = calloc(1, sizeof *x);
	if (!x)
		return l1x_fail(-ENOMEM, "out of memory");
	x->a = local;
	x->chunk = 256;
	snprintf(x->peer, sizeof x->peer, "%s", peer);
	x->gate = getenv("L1XFER_TEST_GATE");
	if (getenv("L1XFER_TEST_GATE_CHUNK"))
		x->gate_chunk = (uint32_t)atoi(getenv("L1XFER_TEST_GATE_CHUNK"));
	r = l1x_ucx_init(&x->u, local);
	if (r)
		goto out_free;
	ucp_ep_params_t ep = {
		.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR |
			      UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER,
		.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER,
		.sockaddr = { .addr = (struct sockaddr *)&ss, .addrlen = slen },
		.err_mode = UCP_ERR_HANDLING_MODE_PEER,
		.err_handler = { .cb = ep_error, .arg = x },
	};
	st = ucp_ep_create(x->u.worker, &ep, &x->ep);
	if (st != UCS_OK) {
		r = l1x_fail(l1x_errno(st), "cannot connect to %s: %s", peer, ucs_status_string(st));
		goto out_ucx;
	}
	uint32_t req = ++x->next_req;
	r = send_msg(x, l1x_msg_new(L1X_HELLO, 0, req, 0, 0), 0);
	m = r ? NULL : wait_reply(x, req, L1X_HELLO_REPLY, 1, 8);
	if (!m) {
		char why[512];
		snprintf(why, sizeof why, "%s", l1_xfer_last_error());
		r = l1x_fail(r ? r : x->ep_failed ? l1x_errno(x->ep_status) : -ETIMEDOUT,
			     "cannot connect to %s (is `l1xfer serve` listening there?): %s", peer,
			     why);
		goto out_ep;
	}
	x->conn = m->hdr.conn;
	x->rbase = m->hdr.arg;
	memcpy(&x->rpool, m->body, 8);
	st = m->hdr.count > 8 ? ucp_ep_rkey_unpack(x->ep, (char *)(m->body) + 8, &x->rkey)
			      : UCS_ERR_INVALID_PARAM;
	free(m);
	if (st != UCS_OK) {
		r = l1x_fail(l1x_errno(st), "the remote key from %s is not usable here: %s", peer,
			     ucs_status_string(st));
		goto out_ep;
	}
	describe_transport(x);
	*out = x;
	return 0;

out_ep:
	x->ep_failed = 1;
	l1_xfer_close(x);
	return r;
out_ucx:
	l1x_ucx_fini(&x->u);
out_free:
	free(x);
	return r;
}

void l1_xfer_close(struct l1_xfer *x)
{
	if (!x)
		return;
	if (x->rkey)
		ucp_rkey_destroy(x->rkey);
	if (x->ep && !x->ep_failed && x->conn)
		send_msg(x, l1x_msg_new(L1X_BYE, x->conn, 0, 0, 0), 0);
	if (x->ep) {
		ucp_request_param_t p = { .op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS,
					  .flags = x->ep_failed ? UCP_EP_CLOSE_FLAG_FORCE : 0 };
		l1x_wait_req(&x->u, ucp_ep_close_nbx(x->ep, &p));
	}
	l1x_ucx_fini(&x->u);
	free(x);
}

int l1_xfer_set_chunk(struct l1_xfer *x, uint32_t keys)
{
	if (keys < 1 || keys > 4096)
		return l1x_fail(-EINVAL, "a chunk is 1 to 4096 keys, not %u", keys);
	x->chunk = keys;
	return 0;
}

void l1_xfer_set_progress(struct l1_xfer *x, l1_xfer_progress_fn fn, void *arg)
{
	x->progress = fn;
	x->parg = arg;
}

const char *l1_xfer_transport(struct l1_xfer *x)
{
	return x->transport;
}

static int check_keys(const char *const *keys, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		size_t l = keys[i] ? strlen(keys[i]) : 0;
		if (l < 1 || l > L1_KEY_MAX)
			return l1x_fail(-EINVAL, "key %u is %s: keys are 1 to %d bytes", i,
					l ? "too long" : "empty", L1_KEY_MAX);
	}
	return 0;
}

/* Keeps the first failure and its sentence (later calls overwrite the
 * thread's sentence). */
static void note_err(struct run *r, int err)
{
	if (r->err)
		return;
	r->err = err;
	snprintf(r->why, sizeof r->why, "%s", l1_xfer_last_error());
}

/* ---- get ------------------------------------------------------------------ */

static void rma_done(void *req, ucs_status_t st, void *user)
{
	struct chunk *c = user;
	if (st != UCS_OK && !c->err)
		c->err = l1x_errno(st);
	c->pending--;
	ucp_request_free(req);
}

/* One-sided read (get) or write (put) between a local object and the
 * peer's pool at offset, both sides registered; counted in the chunk. */
static void rma(struct l1_xfer *x, int put, void *local, uint64_t bytes, uint64_t offset,
		struct chunk *c)
{
	ucp_request_param_t p = {
		.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
				UCP_OP_ATTR_FIELD_MEMH,
		.cb.send = rma_done,
		.user_data = c,
		.memh = x->u.memh,
	};
	ucs_status_ptr_t sp = put ? ucp_put_nbx(x->ep, local, bytes, x->rbase + offset, x->rkey, &p)
				  : ucp_get_nbx(x->ep, local, bytes, x->rbase + offset, x->rkey, &p);
	if (UCS_PTR_IS_ERR(sp))
		c->err = l1x_errno(UCS_PTR_STATUS(sp));
	else if (sp)
		c->pending++;
}

static const struct l1x_entry *entries(const struct chunk *c)
{
	return (const struct l1x_entry *)(c->reply->body);
}

/* One l1_alloc per distinct layout of the chunk's found entries; on any
 * failure the ones done are freed (all or nothing). */
static int alloc_chunk(struct run *r, struct chunk *c)
{
	const struct l1x_entry *e = entries(c);
	struct l1_obj *batch = calloc(c->n, sizeof *batch);
	int err = 0;
	if (!batch)
		return l1x_fail(-ENOMEM, "out of memory");
	for (uint32_t i = 0; i < c->n && !err; i++) {
		uint32_t cnt = 0, b = 0;
		if (e[i].status || c->objs[i].id)
			continue;
		for (uint32_t j = i; j < c->n; j++)
			cnt += !e[j].status && !memcmp(&e[j].layout, &e[i].layout, sizeof e[i].layout);
		err = l1_alloc(r->x->a, &e[i].layout, cnt, batch);
		if (err) {
			char lay[256];
			l1_layout_format(&e[i].layout, lay, sizeof lay);
			err = l1x_fail(err, "no room in the local pool for %u objects of %s: %s", cnt,
				       lay, l1_last_error());
			break;
		}
		for (uint32_t j = i; j < c->n; j++)
			if (!e[j].status && !memcmp(&e[j].layout, &e[i].layout, sizeof e[i].layout))
				c->objs[j] = batch[b++];
	}
	free(batch);
	return err;
}

static void start_reads(struct run *r, struct chunk *c)
{
	struct l1_xfer *x = r->x;
	const struct l1x_entry *e = entries(c);
	uint64_t bytes;
	c->state = CH_READING;
	c->err = alloc_chunk(r, c);
	c->said = c->err != 0;
	for (uint32_t i = 0; i < c->n && !c->err; i++) {
		if (e[i].status)
			continue;
		if (l1_layout_bytes(&e[i].layout, &bytes) || bytes != e[i].bytes ||
		    bytes > c->objs[i].size || bytes > e[i].size) {
			c->err = l1x_fail(-EPROTO, "%s described key '%s' inconsistently", x->peer,
					  r->todo[c->first + i]);
			c->said = 1;
			break;
		}
		rma(x, 0, c->objs[i].ptr, bytes, e[i].offset, c);
	}
}

/* Every read of the chunk is over: release the server's holds, then publish
 * (all reads good) or free (any failed) the chunk's objects. */
static void finish_chunk(struct run *r, struct chunk *c)
{
	struct l1_xfer *x = r->x;
	const struct l1x_entry *e = c->reply ? entries(c) : NULL;
	if (x->ep_failed && (!c->err || !c->said)) {
		c->err = peer_gone(x);
		c->said = 1;
	}
	if (c->err && !c->said)
		c->err = l1x_fail(c->err, "reading from %s failed: %s", x->peer, strerror(-c->err));
	if (e) {
		struct l1x_hdr *d = l1x_msg_new(L1X_DONE, x->conn, 0, 0, (size_t)c->n * 8);
		for (uint32_t i = 0; d && i < c->n; i++)
			if (!e[i].status)
				((uint64_t *)(d + 1))[d->count++] = e[i].id;

		if (d && (!d->count || x->ep_failed))
			free(d);
		else if (d)
			send_msg(x, d, (size_t)d->count * 8);
	}
	for (uint32_t i = 0; i < c->n; i++) {
		const char *key = r->todo[c->first + i];
		int st = e ? e[i].status : c->err;
		if (st == -ENOENT && e) {
			if (!r->st->missing++)
				snprintf(x->first_missing, sizeof x->first_missing, "%s", key);
			continue;
		}
		if (!st && !c->err && c->objs[i].id) {
			st = l1_publish(x->a, c->objs[i].id, key);
			if (!st) {
				r->st->moved++;
				r->st->bytes += e[i].bytes;
				continue;
			}
		}
		if (c->objs[i].id)
			l1_free(x->a, &c->objs[i], 1);
		if (st == -EEXIST) {            /* published here meanwhile */
			r->st->present++;
			continue;
		}
		r->st->failed++;
		if (!r->err && !c->err)
			l1x_fail(st, "%s could not serve '%s': %s", x->peer, key, l1_strerror(st));
		note_err(r, c->err ? c->err : st);
	}
	free(c->reply);
	free(c->objs);
	memset(c, 0, sizeof *c);
	r->last_activity = l1x_now_ns();
}

static int send_lookup(struct run *r, struct chunk *c)
{
	struct l1_xfer *x = r->x;
	struct l1x_hdr *h;
	c->objs = calloc(c->n, sizeof *c->objs);
	h = l1x_msg_new(L1X_LOOKUP, x->conn, c->req = ++x->next_req, c->n,
			(size_t)c->n * L1X_KEY_SLOT);
	if (!c->objs || !h) {
		free(h);
		return l1x_fail(-ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < c->n; i++)
		strcpy((char *)(h + 1) + (size_t)i * L1X_KEY_SLOT, r->todo[c->first + i]);
	c->state = CH_LOOKUP;
	return send_msg(x, h, (size_t)c->n * L1X_KEY_SLOT);
}

/* Test hook (L1XFER_TEST_GATE=PATH, L1XFER_TEST_GATE_CHUNK=N): chunk N, once
 * looked up (held on the server), waits until PATH exists before its reads,
 * so a test can free the keys on the server or kill either side in that
 * window.  Other chunks go on meanwhile. */
static int gate_open(struct l1_xfer *x, struct chunk *c, int announce)
{
	struct stat sb;
	if (!x->gate || c->index != x->gate_chunk)
		return 1;
	if (announce) {
		fprintf(stderr, "l1xfer: test gate: chunk %u looked up, waiting for %s\n", c->index,
			x->gate);
		fflush(stderr);
	}
	return stat(x->gate, &sb) == 0;
}

static void on_reply(struct run *r, struct chunk *ch, struct l1x_msg *m)
{
	for (int k = 0; k < WINDOW; k++) {
		struct chunk *c = &ch[k];
		if (c->state != CH_LOOKUP || c->req != m->hdr.req)
			continue;
		c->reply = m;
		if (m->hdr.type != L1X_LOOKUP_REPLY || m->hdr.count != c->n ||
		    m->len != sizeof m->hdr + (size_t)c->n * sizeof(struct l1x_entry)) {
			c->err = l1x_fail(-EPROTO, "%s sent a malformed lookup reply", r->x->peer);
			c->said = 1;
			c->reply = NULL;
			free(m);
			finish_chunk(r, c);
			return;
		}
		if (gate_open(r->x, c, 1))
			start_reads(r, c);
		else
			c->state = CH_GATED;
		return;
	}
	free(m);                        /* a stray reply */
}

static void report(struct run *r, int force)
{
	uint64_t t = l1x_now_ns();
	r->st->ns = t - r->t0;
	if (!r->x->progress || (!force && t - r->last_report < 500000000ull))
		return;
	r->last_report = t;
	r->x->progress(r->st, r->x->parg);
}

static int get_todo(struct l1_xfer *x, const char *const *todo, uint32_t ntodo,
		    struct l1_xfer_stats *st, uint64_t t0)
{
	struct chunk ch[WINDOW];
	struct run r = { .x = x, .todo = todo, .st = st, .t0 = t0 };
	uint32_t next = 0, nchunk = 0;
	int active = 0;
	memset(ch, 0, sizeof ch);
	r.last_report = r.last_activity = l1x_now_ns();
	while (next < ntodo || active) {
		int busy = 0;
		for (int k = 0; k < WINDOW && next < ntodo && !x->ep_failed && !r.err; k++) {
			struct chunk *c = &ch[k];
			if (c->state != CH_FREE)
				continue;
			c->index = nchunk++;
			c->first = next;
			c->n = ntodo - next < x->chunk ? ntodo - next : x->chunk;
			next += c->n;
			active++;
			int e = send_lookup(&r, c);
			if (e) {
				c->err = e;
				c->said = 1;
				finish_chunk(&r, c);
				active--;
			}
			busy = 1;
		}
		if (r.err || x->ep_failed) {          /* what was not started fails */
			st->failed += ntodo - next;
			next = ntodo;
		}
		while (ucp_worker_progress(x->u.worker))
			busy = 1;
		struct l1x_msg *m;
		while ((m = l1x_queue_pop(&x->u.inbox))) {
			on_reply(&r, ch, m);
			busy = 1;
		}
		for (int k = 0; k < WINDOW; k++) {
			struct chunk *c = &ch[k];
			int over = 0;
			if (c->state == CH_GATED && (gate_open(x, c, 0) || x->ep_failed))
				start_reads(&r, c);
			if (c->state == CH_READING && !c->pending)
				over = 1;
			if (c->state == CH_LOOKUP && (x->ep_failed ||
						      l1x_now_ns() - r.last_activity > REPLY_TIMEOUT_NS)) {
				c->err = x->ep_failed ? peer_gone(x)
						      : l1x_fail(-ETIMEDOUT, "%s did not answer within 60 s",
								 x->peer);
				c->said = 1;
				over = 1;
			}
			if (over) {
				finish_chunk(&r, c);
				active--;
				busy = 1;
			}
		}
		report(&r, 0);
		/* nothing to do until the network says so: sleep on the worker's
		 * event fd, also while reads are in flight (their data wakes it);
		 * spinning takes the CPU the server side needs on a shared host */
		if (!busy)
			l1x_ucx_wait(&x->u, 10);
	}
	report(&r, 0);
	if (r.err)
		l1x_fail(r.err, "%s", r.why);
	return r.err;
}

static int get_common(struct l1_xfer *x, const char *const *keys, uint32_t n,
		      struct l1_xfer_stats *out, uint64_t t0)
{
	struct l1_xfer_stats st = { .requested = n };
	const char **todo;
	uint32_t ntodo = 0;
	struct l1_obj o;
	int err;

	err = check_keys(keys, n);
	if (err)
		goto out;
	todo = malloc((n ? n : 1) * sizeof *todo);
	if (!todo) {
		err = l1x_fail(-ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (l1_lookup(x->a, keys[i], &o) == 0)
			st.present++;
		else
			todo[ntodo++] = keys[i];
	}
	err = get_todo(x, todo, ntodo, &st, t0);
	free(todo);
	if (!err && st.missing)
		err = l1x_fail(-ENOENT, "%llu of the %u keys are not published at %s (the first: '%s')",
			       (unsigned long long)st.missing, n, x->peer, x->first_missing);
out:
	st.ns = l1x_now_ns() - t0;
	if (out)
		*out = st;
	return err;
}

int l1_xfer_get(struct l1_xfer *x, const char *const *keys, uint32_t n,
		struct l1_xfer_stats *st)
{
	return get_common(x, keys, n, st, l1x_now_ns());
}

/* ---- list ----------------------------------------------------------------- */

void l1_xfer_keys_free(char **keys, uint32_t n)
{
	for (uint32_t i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
}

int l1_xfer_list(struct l1_xfer *x, const char *prefix, char ***out)
{
	uint64_t cursor = 0;
	char **keys = NULL;
	uint32_t n = 0, cap = 0;
	*out = NULL;
	if (!prefix)
		prefix = "";
	if (strlen(prefix) > L1_KEY_MAX)
		return l1x_fail(-EINVAL, "the prefix is longer than a key (%d bytes)", L1_KEY_MAX);
	for (;;) {
		uint32_t req = ++x->next_req;
		struct l1x_hdr *h = l1x_msg_new(L1X_LIST, x->conn, req, 0, L1X_KEY_SLOT);
		int err;
		if (h) {
			h->arg = cursor;
			strcpy((char *)(h + 1), prefix);
		}
		err = send_msg(x, h, L1X_KEY_SLOT);
		struct l1x_msg *m = err ? NULL : wait_reply(x, req, L1X_LIST_REPLY, L1X_KEY_SLOT, 0);
		if (!m) {
			l1_xfer_keys_free(keys, n);
			return err ? err : -EIO;
		}
		if (n + m->hdr.count > cap) {
			cap = (n + m->hdr.count) * 2 + 16;
			char **p = realloc(keys, cap * sizeof *p);
			if (!p) {
				free(m);
				l1_xfer_keys_free(keys, n);
				return l1x_fail(-ENOMEM, "out of memory");
			}
			keys = p;
		}
		for (uint32_t i = 0; i < m->hdr.count; i++) {
			char *k = (char *)(m->body) + (size_t)i * L1X_KEY_SLOT;
			k[L1X_KEY_SLOT - 1] = 0;
			keys[n++] = strdup(k);
		}
		int status = m->hdr.status;
		cursor = m->hdr.arg;
		free(m);
		if (status < 0) {
			l1_xfer_keys_free(keys, n);
			return l1x_fail(status, "%s could not list its keys: %s", x->peer,
					l1_strerror(status));
		}
		if (status == 1)
			break;
	}
	*out = keys;
	return (int)n;
}

int l1_xfer_get_prefix(struct l1_xfer *x, const char *prefix, struct l1_xfer_stats *st)
{
	uint64_t t0 = l1x_now_ns();
	char **keys;
	int n = l1_xfer_list(x, prefix, &keys), err;
	if (n < 0) {
		if (st)
			memset(st, 0, sizeof *st);
		return n;
	}
	err = get_common(x, (const char *const *)keys, (uint32_t)n, st, t0);
	l1_xfer_keys_free(keys, (uint32_t)n);
	return err;
}

/* ---- put ------------------------------------------------------------------ */

/* One chunk: hold the local objects, have the peer allocate, write them with
 * ucp_put_nbx, flush (the bytes are at the peer), then commit (publish) or,
 * after a failed write, cancel (the peer frees them). */
static int put_chunk(struct l1_xfer *x, const char *const *keys, uint32_t n,
		     struct l1_xfer_stats *st)
{
	struct l1_obj *objs = calloc(n, sizeof *objs);
	struct l1x_hdr *h = l1x_msg_new(L1X_ALLOC, x->conn, ++x->next_req, 0,
					(size_t)n * sizeof(struct l1x_want));
	struct l1x_want *w = h ? (struct l1x_want *)(h + 1) : NULL;
	uint32_t *idx = calloc(n, sizeof *idx);
	struct l1x_msg *m = NULL;
	struct chunk c = { 0 };
	int err = 0;

	if (!objs || !h || !idx) {
		free(h);
		err = l1x_fail(-ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (l1_hold_key(x->a, keys[i], &objs[i])) {
			objs[i].id = 0;
			if (!st->missing++)
				snprintf(x->first_missing, sizeof x->first_missing, "%s", keys[i]);
			continue;
		}
		if (l1_arena_layout(x->a, objs[i].layout_id, &w[h->count].layout)) {
			l1_release(x->a, objs[i].id);
			objs[i].id = 0;
			st->failed++;
			continue;
		}
		strcpy(w[h->count].key, keys[i]);
		idx[h->count++] = i;
	}
	uint32_t req = h->req, cnt = h->count;
	if (!cnt) {
		free(h);
		goto out;
	}
	err = send_msg(x, h, (size_t)cnt * sizeof *w);
	m = err ? NULL : wait_reply(x, req, L1X_ALLOC_REPLY, sizeof(struct l1x_entry), 0);
	if (!m || m->hdr.count != cnt) {
		err = err ? err : m ? l1x_fail(-EPROTO, "%s sent a malformed reply", x->peer) : -EIO;
		st->failed += cnt;
		goto out;
	}
	const struct l1x_entry *e = (const struct l1x_entry *)(m->body);
	for (uint32_t k = 0; k < cnt && !c.err; k++) {
		struct l1_obj *o = &objs[idx[k]];
		uint64_t bytes;
		if (e[k].status)
			continue;
		if (l1_layout_bytes(&e[k].layout, &bytes) || bytes != e[k].bytes || bytes > o->size) {
			c.err = l1x_fail(-EPROTO, "%s allocated a different layout", x->peer);
			break;
		}
		rma(x, 1, o->ptr, bytes, e[k].offset, &c);
	}
	while (c.pending)
		ucp_worker_progress(x->u.worker);
	if (!c.err) {
		ucp_request_param_t fp = { .op_attr_mask = 0 };
		c.err = l1x_errno(l1x_wait_req(&x->u, ucp_ep_flush_nbx(x->ep, &fp)));
	}
	/* commit (or cancel) what the peer allocated */
	h = l1x_msg_new(L1X_COMMIT, x->conn, ++x->next_req, cnt, (size_t)cnt * sizeof *w);
	if (!h) {
		err = l1x_fail(-ENOMEM, "out of memory");
		goto out;
	}
	w = (struct l1x_want *)(h + 1);
	for (uint32_t k = 0; k < cnt; k++) {
		w[k].id = e[k].status ? 0 : e[k].id;
		w[k].cancel = c.err != 0;
		strcpy(w[k].key, keys[idx[k]]);
	}
	req = h->req;
	err = send_msg(x, h, (size_t)cnt * sizeof *w);
	struct l1x_msg *cr = err ? NULL : wait_reply(x, req, L1X_COMMIT_REPLY, sizeof(int32_t), 0);
	for (uint32_t k = 0; k < cnt; k++) {
		int s = e[k].status ? e[k].status : cr ? ((int32_t *)(cr->body))[k] : -EIO;
		if (!s && !c.err) {
			st->moved++;
			st->bytes += e[k].bytes;
		} else if (s == -EEXIST) {
			st->present++;
		} else {
			st->failed++;
			if (!err)
				err = c.err ? c.err
					    : l1x_fail(s, "%s could not store '%s': %s", x->peer,
						       keys[idx[k]], l1_strerror(s));
		}
	}
	free(cr);
out:
	for (uint32_t i = 0; objs && i < n; i++)
		if (objs[i].id)
			l1_release(x->a, objs[i].id);
	free(m);
	free(objs);
	free(idx);
	return err;
}

int l1_xfer_put(struct l1_xfer *x, const char *const *keys, uint32_t n,
		struct l1_xfer_stats *out)
{
	struct l1_xfer_stats st = { .requested = n };
	uint64_t t0 = l1x_now_ns();
	int err = check_keys(keys, n);
	for (uint32_t i = 0; !err && i < n; i += x->chunk)
		err = put_chunk(x, keys + i, n - i < x->chunk ? n - i : x->chunk, &st);
	if (!err && st.missing)
		err = l1x_fail(-ENOENT, "%llu of the %u keys are not published here (the first: '%s')",
			       (unsigned long long)st.missing, n, x->first_missing);
	st.ns = l1x_now_ns() - t0;
	if (out)
		*out = st;
	return err;
}
