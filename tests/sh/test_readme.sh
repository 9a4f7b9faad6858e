#!/bin/sh
# test_readme.sh - the C example in README.md compiles against the built
# library, runs, and cleans up its pool: the README may not drift from the API.
set -eu
BUILD=${BUILD:-build}
dir=$(mktemp -d /tmp/l1readme.XXXXXX)
trap 'rm -rf "$dir"' EXIT
awk '/^```c$/ {on=1; next} /^```$/ {if (on) exit} on {print}' README.md >"$dir/example.c"
test -s "$dir/example.c" || { echo "README.md has no C example"; exit 1; }
san=""
case "$BUILD" in *asan*) san="-fsanitize=address,undefined" ;; *tsan*) san="-fsanitize=thread" ;; esac
cc -std=gnu11 -Wall -Werror $san -Iarena -o "$dir/example" "$dir/example.c" \
	"$BUILD/lib/libl1arena.a" $(pkg-config --libs liburing) -ldl -lpthread
out=$("$dir/example")
echo "$out"
echo "$out" | grep -q "^used 163840 of 67108864 bytes$"
test ! -e /dev/shm/example-pool
echo "README example: ok"
