/*
 * main.c - l1ctl: drive an l1arena pool from the shell.  Parses the
 * subcommand and its options (one option table for all), then dispatches.
 * No state beyond the parsed options.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l1ctl.h"

static const char usage_text[] =
"usage: l1ctl COMMAND [options]\n"
"\n"
"Commands:\n"
"  setup     reserve huge pages and mount hugetlbfs (root)\n"
"              --hugepages N (default 512) --page-size 2M|1G --mount DIR\n"
"  create    create a pool        --size SIZE [--lazy|--eager] [--init-size SIZE]\n"
"              [--grow-step SIZE] [--align N] [--max-objects N] [--allow-shm]\n"
"              [--no-zero] [--zero uring|memset] [--pin off|auto|defer]\n"
"              [--mode 0600] [--force]\n"
"  info      usage and state of the pool (--json)\n"
"  ls        list objects: id, state, size, owner, key\n"
"  put       allocate an object and fill it from --file F (or stdin)\n"
"              --layout '[2,32,128]:fp16' | --bytes SIZE; [--key K --publish]\n"
"  get       write an object to stdout (or --out F): ID or --key K\n"
"  rm        free objects: ID...\n"
"  publish   publish an object: ID --key K\n"
"  memcheck  verify every invariant [--repair]\n"
"  gc        reclaim what dead processes left\n"
"  destroy   remove the pool file [--force]\n"
"\n"
"Common options: --path P (default: $L1ARENA_PATH, else " L1_DEFAULT_PATH ")\n"
"Sizes: 4096, 512M, 8G, 1.5G.\n"
"Exit codes: 0 success, 1 failed, 2 usage error, 3 memcheck found problems.\n";

int ctl_usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "l1ctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see `l1ctl --help`)\n");
	return EXIT_USAGE;
}

enum {
	O_SIZE = 256, O_INIT, O_GROW, O_ALIGN, O_MAXOBJ, O_HPSIZE, O_HUGEPAGES, O_MOUNT,
	O_LAZY, O_EAGER, O_SHM, O_FORCE, O_NOZERO, O_ZERO, O_PIN, O_MODE, O_LAYOUT,
	O_BYTES, O_FILE, O_KEY, O_PUBLISH, O_OUT, O_REPAIR, O_JSON, O_PATH
};

static const struct option opts[] = {
	{ "path", required_argument, 0, O_PATH },
	{ "size", required_argument, 0, O_SIZE },
	{ "init-size", required_argument, 0, O_INIT },
	{ "grow-step", required_argument, 0, O_GROW },
	{ "align", required_argument, 0, O_ALIGN },
	{ "max-objects", required_argument, 0, O_MAXOBJ },
	{ "page-size", required_argument, 0, O_HPSIZE },
	{ "hugepage-size", required_argument, 0, O_HPSIZE },
	{ "hugepages", required_argument, 0, O_HUGEPAGES },
	{ "mount", required_argument, 0, O_MOUNT },
	{ "lazy", no_argument, 0, O_LAZY },
	{ "eager", no_argument, 0, O_EAGER },
	{ "allow-shm", no_argument, 0, O_SHM },
	{ "force", no_argument, 0, O_FORCE },
	{ "no-zero", no_argument, 0, O_NOZERO },
	{ "zero", required_argument, 0, O_ZERO },
	{ "pin", required_argument, 0, O_PIN },
	{ "mode", required_argument, 0, O_MODE },
	{ "layout", required_argument, 0, O_LAYOUT },
	{ "bytes", required_argument, 0, O_BYTES },
	{ "file", required_argument, 0, O_FILE },
	{ "key", required_argument, 0, O_KEY },
	{ "publish", no_argument, 0, O_PUBLISH },
	{ "out", required_argument, 0, O_OUT },
	{ "repair", no_argument, 0, O_REPAIR },
	{ "json", no_argument, 0, O_JSON },
	{ "help", no_argument, 0, 'h' },
	{ 0, 0, 0, 0 }
};

static int size_opt(const char *name, const char *v, uint64_t *out)
{
	if (l1_parse_size(v, out) == 0)
		return 0;
	ctl_usage("--%s: %s", name, l1_last_error());
	return -1;
}

static int parse(int argc, char **argv, struct ctl *c)
{
	int o;
	c->lazy = 1;
	c->zero_on_free = 1;
	c->pin = L1_PIN_AUTO;
	optind = 2;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		int bad = 0;
		switch (o) {
		case O_PATH: c->path = optarg; break;
		case O_SIZE: bad = size_opt("size", optarg, &c->size); break;
		case O_INIT: bad = size_opt("init-size", optarg, &c->init_size); break;
		case O_GROW: bad = size_opt("grow-step", optarg, &c->grow_step); break;
		case O_ALIGN: bad = size_opt("align", optarg, &c->align); break;
		case O_MAXOBJ: bad = size_opt("max-objects", optarg, &c->max_objects); break;
		case O_HPSIZE: bad = size_opt("page-size", optarg, &c->hugepage_size); break;
		case O_HUGEPAGES: bad = size_opt("hugepages", optarg, &c->hugepages); break;
		case O_BYTES: bad = size_opt("bytes", optarg, &c->bytes); break;
		case O_MOUNT: c->mount = optarg; break;
		case O_LAZY: c->lazy = 1; break;
		case O_EAGER: c->lazy = 0; break;
		case O_SHM: c->allow_shm = 1; break;
		case O_FORCE: c->force = 1; break;
		case O_NOZERO: c->zero_on_free = 0; break;
		case O_ZERO:
			if (!strcmp(optarg, "uring"))
				c->zero_method = L1_ZERO_URING;
			else if (!strcmp(optarg, "memset"))
				c->zero_method = L1_ZERO_MEMSET;
			else if (!strcmp(optarg, "off"))
				c->zero_on_free = 0;
			else
				return ctl_usage("--zero takes uring, memset or off, not '%s'", optarg);
			break;
		case O_PIN:
			if (!strcmp(optarg, "off"))
				c->pin = L1_PIN_OFF;
			else if (!strcmp(optarg, "auto"))
				c->pin = L1_PIN_AUTO;
			else if (!strcmp(optarg, "defer"))
				c->pin = L1_PIN_DEFER;
			else
				return ctl_usage("--pin takes off, auto or defer, not '%s'", optarg);
			break;
		case O_MODE: c->mode_str = optarg; break;
		case O_LAYOUT: c->layout = optarg; break;
		case O_FILE: c->file = optarg; break;
		case O_KEY: c->key = optarg; break;
		case O_PUBLISH: c->publish = 1; break;
		case O_OUT: c->out = optarg; break;
		case O_REPAIR: c->repair = 1; break;
		case O_JSON: c->json = 1; break;
		case 'h': fputs(usage_text, stdout); exit(0);
		default: return EXIT_USAGE;
		}
		if (bad)
			return EXIT_USAGE;
	}
	c->nargs = argc - optind;
	c->args = argv + optind;
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(struct ctl *c);
} cmds[] = {
	{ "setup", cmd_setup }, { "create", cmd_create }, { "info", cmd_info },
	{ "stats", cmd_info }, { "ls", cmd_ls }, { "put", cmd_put }, { "get", cmd_get },
	{ "rm", cmd_rm }, { "publish", cmd_publish }, { "memcheck", cmd_memcheck },
	{ "gc", cmd_gc }, { "destroy", cmd_destroy },
};

int main(int argc, char **argv)
{
	struct ctl c;
	memset(&c, 0, sizeof c);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage_text, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : 0;
	}
	c.cmd = argv[1];
	for (unsigned i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		if (strcmp(cmds[i].name, c.cmd))
			continue;
		int r = parse(argc, argv, &c);
		if (r)
			return r;
		return cmds[i].fn(&c);
	}
	return ctl_usage("unknown command '%s'", c.cmd);
}
