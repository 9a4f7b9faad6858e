/*
 * cmd_obj.c - l1ctl's object commands: ls, put, get, rm, publish.  Each
 * attaches to the pool for the one operation; get holds the object while it
 * copies it out, so the bytes cannot change under it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "l1ctl.h"
#include "../common/l1text.h"

static void ls_json(struct l1_arena *a, const struct l1_obj_info *o)
{
	struct l1_layout l;
	char lay[256] = "";
	char ts[2][48];
	if (l1_arena_layout(a, o->obj.layout_id, &l) == 0)
		l1_layout_format(&l, lay, sizeof lay);
	printf("{\"id\":%llu,\"state\":\"%s\",\"size\":%llu,\"physical_size\":%llu,\"offset\":%llu,"
	       "\"owner_pid\":%d,\"uid\":%u,\"gid\":%u,\"mode\":\"%04o\",\"holds\":%u,"
	       "\"ctime\":\"%s\",\"published\":%s%s%s,\"layout\":",
	       (unsigned long long)o->obj.id, l1_state_name(o->state),
	       (unsigned long long)o->obj.data_size, (unsigned long long)o->obj.size,
	       (unsigned long long)o->obj.offset, o->owner_pid,
	       o->uid, o->gid, o->mode & 07777, o->holds, l1t_time(o->ctime_ns, ts[0], sizeof ts[0]),
	       o->publish_ns ? "\"" : "", o->publish_ns ? l1t_time(o->publish_ns, ts[1], sizeof ts[1]) :
	       "null", o->publish_ns ? "\"" : "");
	l1t_json_str(stdout, lay);
	printf(",\"key\":");
	if (o->key[0])
		l1t_json_str(stdout, o->key);
	else
		printf("null");
	printf("}\n");
}

static void ls_text(struct l1_arena *a, const struct l1_obj_info *o, int exact)
{
	struct l1_layout l;
	char lay[96] = "?", size[2][32];
	const uint64_t sz[2] = { o->obj.data_size, o->obj.size };
	if (l1_arena_layout(a, o->obj.layout_id, &l) == 0)
		l1_layout_format(&l, lay, sizeof lay);
	for (int i = 0; i < 2; i++)
		if (exact)
			snprintf(size[i], sizeof size[i], "%llu", (unsigned long long)sz[i]);
		else
			l1t_size(sz[i], size[i], sizeof size[i]);
	printf("%-20llu %-9s %12s %12s %8d %6u %04o %5u %-24s ", (unsigned long long)o->obj.id,
	       l1_state_name(o->state), size[0], size[1], o->owner_pid, o->uid, o->mode & 07777,
	       o->holds, lay);
	l1t_key(stdout, o->key);        /* a key can never forge a row */
	putchar('\n');
}

int cmd_ls(struct ctl *c)
{
	static struct l1_obj_info info[512];
	struct l1_arena *a = ctl_open(c, 0);
	uint64_t cursor = 0;
	int n, total = 0;
	if (!a)
		return EXIT_FAILED;
	if (!c->json)
		printf("%-20s %-9s %12s %12s %8s %6s %4s %5s %-24s %s\n", "ID", "STATE", "SIZE",
		       "PHYS", "OWNER", "UID", "MODE", "HOLDS", "LAYOUT", "KEY");
	while ((n = l1_obj_list(a, &cursor, info, 512)) > 0) {
		for (int i = 0; i < n; i++)
			if (c->json)
				ls_json(a, &info[i]);
			else
				ls_text(a, &info[i], c->exact);
		total += n;
	}
	l1_arena_close(a);
	if (n < 0)
		return ctl_fail("ls", n);
	fprintf(stderr, "%d object(s)\n", total);
	return 0;
}


/* Reads all of fd into a growing buffer. */
static int read_all(int fd, char **buf, uint64_t *len)
{
	uint64_t cap = 1 << 20, n = 0;
	char *b = malloc(cap);
	if (!b)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			char *nb = realloc(b, cap * 2);
			if (!nb) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0) {
			free(b);
			return -errno;
		}
		if (r == 0)
			break;
		n += (uint64_t)r;
	}
	*buf = b;
	*len = n;
	return 0;
}

int cmd_put(struct ctl *c)
{
	struct l1_layout l;
	struct l1_obj o;
	char *data = NULL;
	uint64_t len = 0, want;
	int rc = EXIT_FAILED, r;
	if (c->layout && c->bytes)
		return ctl_usage("put takes --layout or --bytes, not both");
	if (c->layout && l1_layout_parse(c->layout, &l))
		return ctl_usage("--layout: %s", l1_last_error());
	if (c->publish && !c->key)
		return ctl_usage("--publish needs --key K");
	if (c->key && !c->publish)
		return ctl_usage("--key K without --publish does nothing: add --publish to publish "
				 "the object under K, or drop --key");
	if (c->key && !*c->key)
		return ctl_usage("--key is empty: a key is 1 to %d bytes", L1_KEY_MAX);
	int fd = c->file ? open(c->file, O_RDONLY | O_CLOEXEC) : 0;
	if (fd < 0) {
		fprintf(stderr, "l1ctl: cannot read %s: %s\n", c->file, strerror(errno));
		return EXIT_FAILED;
	}
	r = read_all(fd, &data, &len);
	if (c->file)
		close(fd);
	if (r) {
		fprintf(stderr, "l1ctl: cannot read the input: %s\n", strerror(-r));
		return EXIT_FAILED;
	}
	if (c->layout)
		l1_layout_bytes(&l, &want);
	else
		want = c->bytes ? c->bytes : len;
	if (want == 0) {
		free(data);
		return ctl_usage("the input is empty: give --bytes SIZE or --layout");
	}
	if (len > want) {
		fprintf(stderr, "l1ctl: the input has %llu bytes but the object holds %llu: give a "
			"larger --bytes or --layout\n", (unsigned long long)len,
			(unsigned long long)want);
		free(data);
		return EXIT_FAILED;
	}
	struct l1_arena *a = ctl_open(c, 0);
	if (!a) {
		free(data);
		return EXIT_FAILED;
	}
	r = c->layout ? l1_alloc(a, &l, 1, &o) : l1_alloc_bytes(a, want, 1, &o);
	if (r) {
		ctl_fail("cannot allocate", r);
		goto out;
	}
	memcpy(o.ptr, data, len);
	if (c->key && c->publish && (r = l1_publish(a, o.id, c->key))) {
		ctl_fail("cannot publish", r);
		l1_free(a, &o, 1);
		goto out;
	}
	char name[300] = "";
	if (c->key && c->publish && l1_key_view_name(c->key, name, sizeof name) > 0)
		printf("%llu objects/%llu keys/%s\n", (unsigned long long)o.id,
		       (unsigned long long)o.id, name);
	else
		printf("%llu objects/%llu\n", (unsigned long long)o.id, (unsigned long long)o.id);
	if (!c->publish)
		fprintf(stderr, "note: object %llu is not published; once l1ctl exits, the next "
			"gc reclaims it unless it is published (`l1ctl publish %llu --key K`)\n",
			(unsigned long long)o.id, (unsigned long long)o.id);
	rc = 0;
out:
	l1_arena_close(a);
	free(data);
	return rc;
}

/* A read-only handle cannot hold: copy the bytes, then ask for the object
 * again; if the same id still answers, the copy is its bytes (a freed
 * object no longer answers, a reused slot has a new generation). */
static char *get_unheld(struct l1_arena *a, const struct l1_obj *o, uint64_t size)
{
	struct l1_obj again;
	char *copy = malloc(size ? size : 1);
	if (!copy) {
		fprintf(stderr, "l1ctl: out of memory for a copy of %llu bytes\n",
			(unsigned long long)size);
		return NULL;
	}
	memcpy(copy, o->ptr, size);
	int r = l1_get(a, o->id, &again);
	if (r) {
		ctl_fail("the object went away while it was read (nothing written)", r);
		free(copy);
		return NULL;
	}
	return copy;
}

int cmd_get(struct ctl *c)
{
	struct l1_arena *a;
	struct l1_obj o;
	struct l1_open_opts op;
	uint64_t id = 0;
	int r;
	if (!c->key && c->nargs != 1)
		return ctl_usage("get takes one object ID, or --key K");
	if (!c->key && ctl_parse_id(c->args[0], &id))
		return ctl_usage("'%s' is not an object id", c->args[0]);
	l1_open_opts_init(&op);
	op.pin = L1_PIN_OFF;            /* holds need a client slot */
	op.readonly = c->read_only;
	if ((r = l1_arena_open(c->path, &op, &a)))
		return ctl_fail_attach("cannot attach to the pool", c->path, r);
	if (c->read_only)               /* no hold: copy, then check (get_unheld) */
		r = c->key ? l1_lookup(a, c->key, &o) : l1_get(a, id, &o);
	else
		r = c->key ? l1_hold_key(a, c->key, &o) : l1_hold(a, id, &o);
	if (r) {
		l1_arena_close(a);
		ctl_fail("cannot read the object", r);
		if (r == -ENOENT || r == -ESTALE || r == -EALREADY)
			fprintf(stderr, "l1ctl: `l1ctl ls` lists the objects there are.\n");
		return EXIT_FAILED;
	}
	/* the data size, not the padding up to the block size */
	uint64_t size = o.data_size;
	const char *src = o.ptr;
	char *copy = NULL;
	if (c->read_only && !(src = copy = get_unheld(a, &o, size))) {
		l1_arena_close(a);
		return EXIT_FAILED;
	}
	int fd = c->out ? open(c->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : 1;
	int rc = 0;
	if (fd < 0) {
		fprintf(stderr, "l1ctl: cannot write %s: %s\n", c->out, strerror(errno));
		rc = EXIT_FAILED;
	}
	for (uint64_t off = 0; fd >= 0 && off < size;) {
		ssize_t w = write(fd, src + off, size - off);
		if (w <= 0) {
			fprintf(stderr, "l1ctl: write failed: %s\n", strerror(errno));
			rc = EXIT_FAILED;
			break;
		}
		off += (uint64_t)w;
	}
	if (c->out && fd >= 0)
		close(fd);
	if (!c->read_only)
		l1_release(a, o.id);
	free(copy);
	l1_arena_close(a);
	return rc;
}

int cmd_rm(struct ctl *c)
{
	uint64_t ids[256];
	if (c->nargs < 1 || c->nargs > 256)
		return ctl_usage("rm takes 1 to 256 object ids");
	for (int i = 0; i < c->nargs; i++)
		if (ctl_parse_id(c->args[i], &ids[i]))
			return ctl_usage("'%s' is not an object id", c->args[i]);
	struct l1_arena *a = ctl_open(c, 0);
	if (!a)
		return EXIT_FAILED;
	int r = l1_free_ids(a, ids, (uint32_t)c->nargs);
	l1_arena_close(a);         /* waits for this process's zeroing */
	if (r) {
		ctl_fail("cannot free", r);
		if (r == -EPERM)
			fprintf(stderr, "l1ctl: only an object's owner or root may free it.\n");
		else if (r == -ENOENT || r == -ESTALE || r == -EALREADY)
			fprintf(stderr, "l1ctl: `l1ctl ls` lists the objects there are.\n");
		return EXIT_FAILED;
	}
	printf("freed %d object(s)\n", c->nargs);
	return 0;
}

int cmd_publish(struct ctl *c)
{
	uint64_t id;
	if (c->nargs != 1 || !c->key)
		return ctl_usage("publish takes an object ID and --key K");
	if (ctl_parse_id(c->args[0], &id))
		return ctl_usage("'%s' is not an object id", c->args[0]);
	struct l1_arena *a = ctl_open(c, 0);
	if (!a)
		return EXIT_FAILED;
	int r = l1_publish(a, id, c->key);
	l1_arena_close(a);
	if (r) {
		ctl_fail("cannot publish", r);
		if (r == -EPERM)
			fprintf(stderr, "l1ctl: only an object's owner or root may publish it.\n");
		return EXIT_FAILED;
	}
	printf("published %llu as '", (unsigned long long)id);
	l1t_key(stdout, c->key);
	printf("'\n");
	return 0;
}
