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

L1CTL_SRCS := $(wildcard tools/l1ctl/*.c)
L1BENCH_SRCS := $(wildcard tools/l1bench/*.c)
KVDEMO_SRCS := $(wildcard tools/kvdemo/*.c)
L1FS_SRCS := $(wildcard fuse/*.c)
TEST_COMMON_SRCS := $(wildcard tests/common/*.c)
TEST_SRCS := $(wildcard tests/check_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)

BINS := $(if $(L1CTL_SRCS),$(BUILD)/bin/l1ctl) \
	$(if $(L1BENCH_SRCS),$(BUILD)/bin/l1bench) \
	$(if $(KVDEMO_SRCS),$(BUILD)/bin/kvdemo) \
	$(if $(L1FS_SRCS),$(BUILD)/bin/l1fs)

.PHONY: all lib bins tests check run deps clean fuzz
# keep the objects make sees as intermediates: a second build rebuilds nothing
.SECONDARY:
all: lib bins tests

lib: $(LIBA) $(LIBSO)
bins: $(BINS)
tests: $(TEST_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(if $(findstring fuse/,$<),$(FUSE_CFLAGS)) \
		$(if $(findstring tests/,$<),$(CHECK_CFLAGS) -Itests/common) -c -o $@ $<

$(LIBA): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBSO): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,libl1arena.so -o $@ $^ $(LDLIBS_LIB)

$(BUILD)/bin/l1ctl: $(L1CTL_SRCS:%.c=$(BUILD)/obj/%.o) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_LIB)

$(BUILD)/bin/l1bench: $(L1BENCH_SRCS:%.c=$(BUILD)/obj/%.o) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_LIB) -lm

$(BUILD)/bin/kvdemo: $(KVDEMO_SRCS:%.c=$(BUILD)/obj/%.o) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_LIB) -lm

$(BUILD)/bin/l1fs: $(L1FS_SRCS:%.c=$(BUILD)/obj/%.o) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(FUSE_LIBS) $(LDLIBS_LIB)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_COMMON_SRCS:%.c=$(BUILD)/obj/%.o) $(LIBA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS_LIB)

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

# one job per core; `make run` builds only the tools it runs
NPROC := $(shell nproc 2>/dev/null || echo 2)

check: deps
	$(MAKE) -j$(NPROC) all
	BUILD=$(BUILD) sh tests/run.sh

run: deps
	$(MAKE) -j$(NPROC) bins
	BUILD=$(BUILD) sh tools/run-main.sh

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
