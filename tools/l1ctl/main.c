/*
 * main.c - l1ctl: drive an l1arena pool from the shell.  One table names
 * every subcommand with the options it takes and its help text; one option
 * table parses them all, and an option the subcommand does not take is a
 * usage error, not silently ignored.  `l1ctl CMD --help` (or `l1ctl help
 * CMD`) prints that subcommand's help.  No state beyond the parsed options.
 *
 * Exit codes (every subcommand): 0 done; 1 the operation failed (a sentence
 * on stderr says why and what to do); 2 usage error (bad option, bad size);
 * 3 memcheck found problems.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"            /* L1_FMT_MAJOR, for --version */
#include "l1ctl.h"

enum {
	O_SIZE = 256, O_INIT, O_GROW, O_ALIGN, O_MAXOBJ, O_HPSIZE, O_HUGEPAGES, O_MOUNT,
	O_LAZY, O_EAGER, O_SHM, O_FORCE, O_NOZERO, O_ZERO, O_MODE, O_LAYOUT,
	O_BYTES, O_FILE, O_KEY, O_PUBLISH, O_OUT, O_REPAIR, O_JSON, O_PATH, O_TEXTFILE, O_RO, O_LAST
};
#define B(o) (1u << ((o) - O_SIZE))
#define CREATE_OPTS (B(O_SIZE) | B(O_INIT) | B(O_GROW) | B(O_ALIGN) | B(O_MAXOBJ) | \
		     B(O_HPSIZE) | B(O_LAZY) | B(O_EAGER) | B(O_SHM) | B(O_FORCE) | \
		     B(O_NOZERO) | B(O_ZERO) | B(O_MODE))

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
	{ "mode", required_argument, 0, O_MODE },
	{ "layout", required_argument, 0, O_LAYOUT },
	{ "bytes", required_argument, 0, O_BYTES },
	{ "file", required_argument, 0, O_FILE },
	{ "key", required_argument, 0, O_KEY },
	{ "publish", no_argument, 0, O_PUBLISH },
	{ "out", required_argument, 0, O_OUT },
	{ "repair", no_argument, 0, O_REPAIR },
	{ "json", no_argument, 0, O_JSON },
	{ "textfile", required_argument, 0, O_TEXTFILE },
	{ "read-only", no_argument, 0, O_RO },
	{ "help", no_argument, 0, 'h' },
	{ 0, 0, 0, 0 }
};

#define COMMON \
"  --path P   the pool (default: $L1ARENA_PATH, else " L1_DEFAULT_PATH ",\n" \
"             else the first hugetlbfs mount)\n"
#define EXITS \
"Exit codes: 0 done; 1 failed (the message says why and what to do);\n" \
"2 usage error.\n"

struct cmd {
	const char *name;
	int (*fn)(struct ctl *c);
	unsigned takes;                 /* B(O_*) of the options it accepts */
	const char *summary;            /* one line for `l1ctl --help` */
	const char *help;               /* `l1ctl CMD --help` */
};

static const struct cmd cmds[] = {
	{ "setup", cmd_setup, B(O_HUGEPAGES) | B(O_HPSIZE) | B(O_MOUNT),
	  "reserve huge pages and mount hugetlbfs (root)",
	  "usage: l1ctl setup [--hugepages N] [--page-size 2M|1G] [--mount DIR]\n\n"
	  "Makes sure N huge pages are free (raising /proc/sys/vm/nr_hugepages, which\n"
	  "needs root) and that a hugetlbfs of that page size is mounted at DIR.\n"
	  "Nothing is undone later: lower nr_hugepages and umount DIR to give them back.\n\n"
	  "  --hugepages N     free huge pages wanted (default 512 = 1 GiB of 2 MiB pages)\n"
	  "  --page-size SIZE  2M (default) or 1G\n"
	  "  --mount DIR       where hugetlbfs goes (default /dev/hugepages)\n\n" EXITS },
	{ "create", cmd_create, CREATE_OPTS,
	  "create a pool (--size SIZE)",
	  "usage: l1ctl create --size SIZE [--lazy|--eager] [--init-size SIZE]\n"
	  "                    [--grow-step SIZE] [--align N] [--max-objects N]\n"
	  "                    [--page-size 2M|1G] [--allow-shm] [--no-zero]\n"
	  "                    [--mode 0600] [--force] [--path P]\n\n"
	  "Formats a new pool file and prints its size, backing and object limit.\n\n"
	  "  --size SIZE       data size of the pool (required): 512M, 8G, 1.5G\n"
	  "  --lazy            back pages as the pool fills, one grow step at a time\n"
	  "                    (the default)\n"
	  "  --eager           back (fault in) the whole pool now\n"
	  "  --init-size SIZE  lazy: committed at create (default min(20G, size))\n"
	  "  --grow-step SIZE  lazy growth and CUDA registration unit; no object can be\n"
	  "                    larger (default 1G, capped to the size)\n"
	  "  --align N         block size, a power of two (default 4096)\n"
	  "  --max-objects N   object records (default size / 64 KiB, at least 1024)\n"
	  "  --page-size SIZE  huge page size, 2M or 1G (default: the mount's)\n"
	  "  --allow-shm       fall back to /dev/shm when no hugetlbfs is usable (a path\n"
	  "                    whose directory is missing becomes /dev/shm/NAME: said so)\n"
	  "  --no-zero         do not zero freed memory (also --zero off)\n"
	  "  --mode MODE       file mode of the pool, octal (default 0600: only its\n"
	  "                    owner attaches; 0640: its group may attach read-only).\n"
	  "                    Whoever opens a pool read-write can change all of it:\n"
	  "                    one pool per tenant, never 0666 (README, Trust)\n"
	  "  --force           replace a pool that is already there (its objects are\n"
	  "                    lost); refused while processes are attached to it unless\n"
	  "                    given twice.  The old pool stays until the new one is\n"
	  "                    complete, and stays if the new one does not fit\n" COMMON "\n" EXITS },
	{ "info", cmd_info, B(O_JSON) | B(O_RO), "usage and state of the pool (--json)",
	  "usage: l1ctl info [--json] [--read-only] [--path P]\n\n"
	  "Usage, growth, dirty bytes, objects by state, counters, and every attached\n"
	  "process with its pinning and zeroing method.  Also `l1ctl stats`.\n\n"
	  "  --json       one JSON object instead of text\n"
	  "  --read-only  attach read-only (for the pool's group, mode 0640)\n" COMMON "\n" EXITS },
	{ "stats", cmd_info, B(O_JSON) | B(O_RO), NULL,
	  "usage: l1ctl stats [--json] [--read-only] [--path P]\n\nThe same as `l1ctl info`.\n\n"
	  "  --json       one JSON object instead of text\n"
	  "  --read-only  attach read-only (for the pool's group, mode 0640)\n" COMMON "\n" EXITS },
	{ "ls", cmd_ls, B(O_JSON) | B(O_BYTES) | B(O_RO),
	  "list objects: id, state, size, owner, uid, mode, holds, layout, key",
	  "usage: l1ctl ls [--json] [--bytes] [--read-only] [--path P]\n\n"
	  "Lists every live object: id, state (allocated, published, doomed), size,\n"
	  "owner pid, uid, mode, holds, layout and key; the count goes to stderr.\n"
	  "Keys are escaped: bytes outside printable ASCII, and '\\' as \\xHH.\n\n"
	  "  --bytes      sizes in bytes (default: KiB, MiB, GiB)\n"
	  "  --json       one JSON object per line, exact figures, the key as a string\n"
	  "  --read-only  attach read-only (for the pool's group, mode 0640)\n"
	  COMMON "\n" EXITS },
	{ "metrics", cmd_metrics, B(O_TEXTFILE),
	  "the pool's figures for Prometheus [--textfile DIR]",
	  "usage: l1ctl metrics [--textfile DIR] [--path P]\n\n"
	  "Prints the pool's figures in the Prometheus text format, every series\n"
	  "labelled pool=\"PATH\".  With --textfile, writes DIR/l1arena_NAME.prom\n"
	  "atomically instead (a temporary file, then a rename; mode 0644), for\n"
	  "node_exporter's textfile collector: run it from cron or a timer, one file\n"
	  "per pool.\n\n"
	  "  --textfile DIR   the collector's directory (e.g.\n"
	  "                   /var/lib/prometheus/node-exporter)\n" COMMON "\n" EXITS },
	{ "put", cmd_put, B(O_LAYOUT) | B(O_BYTES) | B(O_FILE) | B(O_KEY) | B(O_PUBLISH),
	  "allocate an object and fill it from a file or stdin",
	  "usage: l1ctl put [--layout L | --bytes SIZE] [--file F] [--key K --publish]\n"
	  "                 [--path P]\n\n"
	  "Allocates one object, copies the input into it (the rest stays zero), and\n"
	  "prints its id and its path in the l1fs view (objects/ID, and keys/NAME when\n"
	  "published).  An object that is not published is reclaimed by the next gc\n"
	  "once l1ctl has exited: publish it to keep it.\n\n"
	  "  --layout L     tensor layout, e.g. '[2,32,256,1024]:fp16' or\n"
	  "                 '[2,32,128]:bf16;[4]:int32'\n"
	  "  --bytes SIZE   size in bytes instead (default: the input's size)\n"
	  "  --file F       read F (default: stdin)\n"
	  "  --key K        the key to publish under (1 to 127 bytes; needs --publish)\n"
	  "  --publish      publish the object under --key\n" COMMON "\n" EXITS },
	{ "get", cmd_get, B(O_KEY) | B(O_OUT) | B(O_RO), "write an object to stdout (ID or --key K)",
	  "usage: l1ctl get (ID | --key K) [--out F] [--read-only] [--path P]\n\n"
	  "Holds the object (so its bytes cannot change) and writes its layout's bytes\n"
	  "to stdout or F.\n\n"
	  "  --key K      the object published under K, instead of an ID\n"
	  "  --out F      write to F instead of stdout\n"
	  "  --read-only  attach read-only (the pool's group, mode 0640): no hold; the\n"
	  "               bytes are copied, then kept only if the object is still there\n"
	  COMMON "\n" EXITS },
	{ "rm", cmd_rm, 0, "free objects: ID...",
	  "usage: l1ctl rm ID... [--path P]\n\n"
	  "Frees 1 to 256 objects, all or none: if any id is wrong (unknown, freed\n"
	  "already, not yours), nothing is freed.  Held objects are freed when their\n"
	  "last hold goes.  Waits until the memory is zeroed.\n\n" COMMON "\n" EXITS },
	{ "publish", cmd_publish, B(O_KEY), "publish an object: ID --key K",
	  "usage: l1ctl publish ID --key K [--path P]\n\n"
	  "Makes an allocated object immutable and findable under K.  Only its owner\n"
	  "(or root) may publish it.\n\n" COMMON "\n" EXITS },
	{ "memcheck", cmd_memcheck, B(O_REPAIR), "verify every invariant [--repair]",
	  "usage: l1ctl memcheck [--repair] [--path P]\n\n"
	  "Checks every invariant of the shared state (records, bitmap, key index,\n"
	  "holds, counters) and prints a report.\n\n"
	  "  --repair   first rebuild the derived state from the records\n" COMMON "\n"
	  "Exit codes: 0 clean; 1 failed (the message says why); 2 usage error;\n"
	  "3 problems found (the report lists them).\n" },
	{ "gc", cmd_gc, 0, "reclaim what dead processes left",
	  "usage: l1ctl gc [--path P]\n\n"
	  "Frees the unpublished objects of writers that died, re-zeroes what a dead\n"
	  "process (or one stopped for over 2 s) was zeroing, drops dead processes'\n"
	  "holds and client slots, and waits until the zeroing is done.  A process is\n"
	  "dead when it no longer holds its lock on the pool file (the kernel's\n"
	  "word, the same in every namespace; /proc is not asked).\n\n" COMMON "\n" EXITS },
	{ "destroy", cmd_destroy, B(O_FORCE), "remove the pool file [--force]",
	  "usage: l1ctl destroy [--force] [--path P]\n\n"
	  "Removes the pool file.  Refuses while processes are attached, or when the\n"
	  "file is not a pool this l1ctl can read (another format version, damaged).\n\n"
	  "  --force    remove it anyway\n" COMMON "\n" EXITS },
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

static void usage(FILE *f)
{
	fprintf(f, "usage: l1ctl COMMAND [options]     (l1ctl COMMAND --help for its options)\n"
		   "\nCommands:\n");
	for (unsigned i = 0; i < NCMDS; i++)
		if (cmds[i].summary)
			fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(f, "\nEvery command takes --path P (default: $L1ARENA_PATH, else "
		   L1_DEFAULT_PATH ").\nSizes: 4096, 512M, 8G, 1.5G (decimal; no spaces, signs or "
		   "hex).\nObject ids: decimal, as `l1ctl ls` prints them.  l1ctl --version: the "
		   "version.\n"
		   "Exit codes: 0 done; 1 failed (the message says why and what to do);\n"
		   "2 usage error; 3 memcheck found problems.\n");
}

static const struct cmd *cmd_by_name(const char *name)
{
	for (unsigned i = 0; i < NCMDS; i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

static const struct cmd *current;

int ctl_usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "l1ctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (current)
		fprintf(stderr, "\n(see `l1ctl %s --help`)\n", current->name);
	else
		fprintf(stderr, "\n(see `l1ctl --help`)\n");
	return EXIT_USAGE;
}

static int size_opt(const char *name, const char *v, uint64_t *out)
{
	if (l1_parse_size(v, out) == 0)
		return 0;
	ctl_usage("--%s: %s", name, l1_last_error());
	return -1;
}

static int count_opt(const char *name, const char *v, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || n == 0) {
		ctl_usage("--%s takes a count such as 512, not '%s'", name, v);
		return -1;
	}
	*out = n;
	return 0;
}

static const char *opt_name(int o)
{
	for (const struct option *p = opts; p->name; p++)
		if (p->val == o)
			return p->name;
	return "?";
}

static int parse_one(struct ctl *c, int o)
{
	switch (o) {
	case O_PATH: c->path = optarg; break;
	case O_SIZE: return size_opt("size", optarg, &c->size);
	case O_INIT: return size_opt("init-size", optarg, &c->init_size);
	case O_GROW: return size_opt("grow-step", optarg, &c->grow_step);
	case O_ALIGN: return size_opt("align", optarg, &c->align);
	case O_MAXOBJ: return size_opt("max-objects", optarg, &c->max_objects);
	case O_HPSIZE: return size_opt("page-size", optarg, &c->hugepage_size);
	case O_HUGEPAGES: return count_opt("hugepages", optarg, &c->hugepages);
	case O_BYTES:
		if (!optarg) {          /* ls --bytes: a flag */
			c->exact = 1;
			break;
		}
		return size_opt("bytes", optarg, &c->bytes);
	case O_TEXTFILE: c->textfile = optarg; break;
	case O_MOUNT: c->mount = optarg; break;
	case O_LAZY: c->lazy = 1; break;
	case O_EAGER: c->lazy = 0; break;
	case O_SHM: c->allow_shm = 1; break;
	case O_FORCE: c->force++; break;       /* create: twice = even if attached */
	case O_NOZERO: c->zero_on_free = 0; break;
	case O_ZERO:
		if (!strcmp(optarg, "off"))
			c->zero_on_free = 0;
		else if (!strcmp(optarg, "on"))
			c->zero_on_free = 1;
		else
			return ctl_usage("--zero takes on or off, not '%s' (each attached process "
					 "picks io_uring or memset itself)", optarg), -1;
		break;
	case O_MODE: c->mode_str = optarg; break;
	case O_LAYOUT: c->layout = optarg; break;
	case O_FILE: c->file = optarg; break;
	case O_KEY: c->key = optarg; break;
	case O_PUBLISH: c->publish = 1; break;
	case O_OUT: c->out = optarg; break;
	case O_REPAIR: c->repair = 1; break;
	case O_JSON: c->json = 1; break;
	case O_RO: c->read_only = 1; break;
	}
	return 0;
}

/* 0, or the exit code: EXIT_USAGE, or -1 for "help was printed". */
static int parse(int argc, char **argv, const struct cmd *cmd, struct ctl *c)
{
	int o;
	c->lazy = 1;
	c->zero_on_free = 1;
	struct option table[sizeof opts / sizeof opts[0]];
	memcpy(table, opts, sizeof opts);
	for (struct option *p = table; p->name; p++)      /* ls --bytes is a flag */
		if (p->val == O_BYTES && cmd->fn == cmd_ls)
			p->has_arg = no_argument;
	optind = 2;
	opterr = 0;
	while ((o = getopt_long(argc, argv, ":h", table, NULL)) != -1) {
		if (o == 'h') {
			fputs(cmd->help, stdout);
			return -1;
		}
		if (o == '?')
			return ctl_usage("%s takes no option '%s'", cmd->name, argv[optind - 1]);
		if (o == ':')
			return ctl_usage("option '%s' needs a value", argv[optind - 1]);
		if (o != O_PATH && !(cmd->takes & B(o)))
			return ctl_usage("%s takes no option --%s", cmd->name, opt_name(o));
		if (parse_one(c, o))
			return EXIT_USAGE;
	}
	c->nargs = argc - optind;
	c->args = argv + optind;
	return 0;
}

int main(int argc, char **argv)
{
	struct ctl c;
	memset(&c, 0, sizeof c);
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V") ||
	    !strcmp(argv[1], "version")) {
		printf("l1ctl (l1arena) %d.%d, pool format %d.%d\n", L1_VERSION_MAJOR,
		       L1_VERSION_MINOR, L1_FMT_MAJOR, L1_FMT_MINOR);
		return 0;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		const struct cmd *h = argc > 2 ? cmd_by_name(argv[2]) : NULL;
		if (argc > 2 && !h)
			return ctl_usage("unknown command '%s'", argv[2]);
		if (h)
			fputs(h->help, stdout);
		else
			usage(stdout);
		return 0;
	}
	const struct cmd *cmd = cmd_by_name(argv[1]);
	if (!cmd)
		return ctl_usage("unknown command '%s'", argv[1]);
	current = cmd;
	c.cmd = cmd->name;
	int r = parse(argc, argv, cmd, &c);
	if (r)
		return r < 0 ? 0 : r;
	return cmd->fn(&c);
}
