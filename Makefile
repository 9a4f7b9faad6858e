# l1arena - top-level build.  `make` builds into build/, `make check` installs
# what is missing, builds and runs every test, `make run` runs the main job.
# SANITIZE=address (ASan+UBSan) or SANITIZE=thread builds into build/<name>.

CC ?= cc
CFLAGS ?= -O2 -g
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -fPIC -D_GNU_SOURCE \
	-Iarena -MMD -MP
LDLIBS_LIB := $(shell pkg-config --libs liburing 2>/dev/null || echo -luring) -ldl -lpthread
FUSE_CFLAGS := $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS := $(shell pkg-config --libs fuse3 2>/dev/null || echo -lfuse3)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt)

BUILD ?= build
ifeq ($(SANITIZE),address)
override CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
override LDFLAGS += -fsanitize=address,undefined
BUILD := build/asan
endif
ifeq ($(SANITIZE),thread)
override CFLAGS += -fsanitize=thread -fno-omit-frame-pointer
override LDFLAGS += -fsanitize=thread
BUILD := build/tsan
endif

LIB_SRCS := $(wildcard arena/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LIBA := $(BUILD)/lib/libl1arena.a
LIBSO := $(BUILD)/lib/libl1arena.so
# the library's version (arena/l1arena.h: L1_VERSION_MAJOR.MINOR) and ABI
L1_VERSION := 1.0.0
L1_SOVERSION := 1

L1CTL_SRCS := $(wildcard tools/l1ctl/*.c)
L1BENCH_SRCS := $(wildcard tools/l1bench/*.c)
KVDEMO_SRCS := $(wildcard tools/kvdemo/*.c)
L1FS_SRCS := $(wildcard fuse/*.c)
# text shared by l1ctl and l1fs (units, escaped keys, Prometheus families)
COMMON_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tools/common/*.c))
TEST_COMMON_SRCS := $(wildcard tests/common/*.c)
TEST_SRCS := $(wildcard tests/check_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)

BINS := $(if $(L1CTL_SRCS),$(BUILD)/bin/l1ctl) \
	$(if $(L1BENCH_SRCS),$(BUILD)/bin/l1bench) \
	$(if $(KVDEMO_SRCS),$(BUILD)/bin/kvdemo) \
	$(if $(L1FS_SRCS),$(BUILD)/bin/l1fs)

.PHONY: all lib bins tests check run deps clean fuzz install uninstall
# keep the objects make sees as intermediates: a second build rebuilds nothing
.SECONDARY:
all: lib bins tests

lib: $(LIBA) $(LIBSO).$(L1_VERSION)
bins: $(BINS)
tests: $(TEST_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(if $(findstring fuse/,$<),$(FUSE_CFLAGS)) \
		$(if $(findstring tests/,$<),$(CHECK_CFLAGS) -Itests/common) -c -o $@ $<

$(LIBA): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# libl1arena.so.$(L1_VERSION) with soname libl1arena.so.$(L1_SOVERSION);
# libl1arena.so links to it (for -ll1arena and ctypes)
$(LIBSO).$(L1_VERSION): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,libl1arena.so.$(L1_SOVERSION) -o $@ $^ $(LDLIBS_LIB)
	ln -sf libl1arena.so.$(L1_VERSION) $(LIBSO).$(L1_SOVERSION)
	ln -sf libl1arena.so.$(L1_VERSION) $(LIBSO)
# the link names come with the library (for rules that need libl1arena.so)
$(LIBSO) $(LIBSO).$(L1_SOVERSION): $(LIBSO).$(L1_VERSION) ;

$(BUILD)/bin/l1ctl: $(L1CTL_SRCS:%.c=$(BUILD)/obj/%.o) $(COMMON_OBJS) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_LIB)

$(BUILD)/bin/l1bench: $(L1BENCH_SRCS:%.c=$(BUILD)/obj/%.o) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_LIB) -lm

$(BUILD)/bin/kvdemo: $(KVDEMO_SRCS:%.c=$(BUILD)/obj/%.o) $(COMMON_OBJS) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_LIB) -lm

$(BUILD)/bin/l1fs: $(L1FS_SRCS:%.c=$(BUILD)/obj/%.o) $(COMMON_OBJS) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(FUSE_LIBS) $(LDLIBS_LIB)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_COMMON_SRCS:%.c=$(BUILD)/obj/%.o) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS_LIB)

# ---- l1xfer: pool-to-pool transfer over UCX (tools/l1xfer) ----------------
# Only this tool links UCX; libl1arena stays free of it.  libl1xfer.so (for
# the Python binding) links libl1arena.so; the l1xfer binary links both
# statically but UCX.  Built with `make bins` where pkg-config finds ucx.
XFER_CFLAGS := $(shell pkg-config --cflags ucx 2>/dev/null)
XFER_LIBS := $(shell pkg-config --libs ucx 2>/dev/null)
XFER_LIB_SRCS := $(filter-out tools/l1xfer/main.c,$(wildcard tools/l1xfer/*.c))
XFER_LIB_OBJS := $(XFER_LIB_SRCS:%.c=$(BUILD)/obj/%.o)
XFERSO := $(BUILD)/lib/libl1xfer.so
ifneq ($(XFER_LIBS),)
bins: $(BUILD)/bin/l1xfer $(XFERSO)
endif
$(BUILD)/obj/tools/l1xfer/%.o: override CFLAGS += $(XFER_CFLAGS)

$(XFERSO): $(XFER_LIB_OBJS) $(LIBSO)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,libl1xfer.so -Wl,-rpath,'$$ORIGIN' -o $@ \
		$(XFER_LIB_OBJS) -L$(BUILD)/lib -ll1arena $(XFER_LIBS)

$(BUILD)/bin/l1xfer: $(BUILD)/obj/tools/l1xfer/main.o $(XFER_LIB_OBJS) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(XFER_LIBS) $(LDLIBS_LIB)

# libFuzzer target over pool files (clang; tests/sh/test_fuzz.sh runs it).
FUZZ_CC ?= clang-14
build/fuzz/fuzz_pool: tests/fuzz/fuzz_pool.c $(LIB_SRCS) $(wildcard arena/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=gnu11 -g -O1 -D_GNU_SOURCE -Iarena -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=undefined -o $@ tests/fuzz/fuzz_pool.c $(LIB_SRCS) $(LDLIBS_LIB)
fuzz: build/fuzz/fuzz_pool

# Installs the Debian packages that are missing (root), or says how.
deps:
	@sh tools/install-deps.sh

check: deps
	$(MAKE) all
	$(MAKE) bins
	BUILD=$(BUILD) sh tests/run.sh

run: deps
	$(MAKE) all
	BUILD=$(BUILD) sh tools/run-main.sh

clean:
	rm -rf build

# ---- install ---------------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=/tmp/stage]: the library (static,
# shared with soname), the header, l1arena.pc, l1ctl/l1fs/l1bench, man pages,
# systemd units, the mount helper (mount -t fuse.l1fs, fstab), the Python
# package (told where the library went), and an example pool config.
# `make uninstall` removes exactly what install put there (same variables).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
# mount(8) looks for mount.fuse.TYPE helpers in /sbin only (a private
# PREFIX keeps it beside the rest, where mount will not look)
MOUNTHELPERDIR ?= $(if $(filter /usr /usr/local,$(PREFIX)),/sbin,$(PREFIX)/sbin)
# Debian's python3 reads /usr/lib/python3/dist-packages and
# /usr/local/lib/python3.X/dist-packages; elsewhere set PYTHONDIR
PYTHON ?= $(if $(wildcard /usr/bin/python3),/usr/bin/python3,python3)
PYVER = $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PYTHONDIR ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/python3/dist-packages,$(PREFIX)/lib/python$(PYVER)/dist-packages)
INSTALL ?= install
INST_BINS := l1ctl l1fs l1bench
MAN1 := l1ctl.1 l1fs.1
MAN3 := l1arena.3
UNITS := l1arena@.service l1fs@.service
PYFILES := $(notdir $(wildcard tools/python/l1arena/*.py))
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
	-e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@VERSION@|$(L1_VERSION)|g'

install: lib bins
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(MOUNTHELPERDIR) $(DESTDIR)$(SYSCONFDIR)/l1arena \
		$(DESTDIR)$(PYTHONDIR)/l1arena
	$(INSTALL) -m 0755 $(INST_BINS:%=$(BUILD)/bin/%) $(DESTDIR)$(BINDIR)
	$(INSTALL) -m 0755 $(LIBSO).$(L1_VERSION) $(DESTDIR)$(LIBDIR)
	ln -sf libl1arena.so.$(L1_VERSION) $(DESTDIR)$(LIBDIR)/libl1arena.so.$(L1_SOVERSION)
	ln -sf libl1arena.so.$(L1_SOVERSION) $(DESTDIR)$(LIBDIR)/libl1arena.so
	$(INSTALL) -m 0644 $(LIBA) $(DESTDIR)$(LIBDIR)
	$(INSTALL) -m 0644 arena/l1arena.h $(DESTDIR)$(INCLUDEDIR)
	$(SUBST) tools/l1arena.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/l1arena.pc
	$(INSTALL) -m 0644 $(MAN1:%=tools/man/%) $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 0644 $(MAN3:%=tools/man/%) $(DESTDIR)$(MANDIR)/man3
	for u in $(UNITS); do $(SUBST) tools/systemd/$$u >$(DESTDIR)$(UNITDIR)/$$u || exit 1; done
	$(SUBST) tools/systemd/mount.fuse.l1fs >$(DESTDIR)$(MOUNTHELPERDIR)/mount.fuse.l1fs
	$(SUBST) tools/systemd/l1arena-pool >$(DESTDIR)$(BINDIR)/l1arena-pool
	chmod 0755 $(DESTDIR)$(MOUNTHELPERDIR)/mount.fuse.l1fs $(DESTDIR)$(BINDIR)/l1arena-pool
	$(SUBST) tools/systemd/example.conf >$(DESTDIR)$(SYSCONFDIR)/l1arena/example.conf.sample
	$(INSTALL) -m 0644 $(PYFILES:%=tools/python/l1arena/%) $(DESTDIR)$(PYTHONDIR)/l1arena
	echo 'LIBDIR = "$(LIBDIR)"' >$(DESTDIR)$(PYTHONDIR)/l1arena/_installed.py
	@[ -n "$(DESTDIR)" ] || ldconfig 2>/dev/null || true

uninstall:
	rm -f $(INST_BINS:%=$(DESTDIR)$(BINDIR)/%) $(DESTDIR)$(BINDIR)/l1arena-pool
	rm -f $(DESTDIR)$(LIBDIR)/libl1arena.so.$(L1_VERSION) \
		$(DESTDIR)$(LIBDIR)/libl1arena.so.$(L1_SOVERSION) \
		$(DESTDIR)$(LIBDIR)/libl1arena.so $(DESTDIR)$(LIBDIR)/libl1arena.a
	rm -f $(DESTDIR)$(INCLUDEDIR)/l1arena.h $(DESTDIR)$(PKGCONFIGDIR)/l1arena.pc
	rm -f $(MAN1:%=$(DESTDIR)$(MANDIR)/man1/%) $(MAN3:%=$(DESTDIR)$(MANDIR)/man3/%)
	rm -f $(UNITS:%=$(DESTDIR)$(UNITDIR)/%) $(DESTDIR)$(MOUNTHELPERDIR)/mount.fuse.l1fs
	rm -f $(DESTDIR)$(SYSCONFDIR)/l1arena/example.conf.sample
	-rmdir $(DESTDIR)$(SYSCONFDIR)/l1arena 2>/dev/null
	rm -rf $(DESTDIR)$(PYTHONDIR)/l1arena
	@[ -n "$(DESTDIR)" ] || ldconfig 2>/dev/null || true

-include $(shell find build -name '*.d' 2>/dev/null)
