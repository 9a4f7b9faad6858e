#!/bin/sh
# test_install.sh - l1arena installed as a system component, in temporary
# directories only (nothing goes to /usr, /sbin or /etc):
#   1. make install DESTDIR=...: files, soname, the README's C example built
#      with `pkg-config --cflags --libs l1arena` (PKG_CONFIG_SYSROOT_DIR) and
#      run, the Python package imported from there, man pages that render;
#   2. make install PREFIX=... (no DESTDIR): the Python package finds the
#      installed library with no environment; `pip install
#      --no-build-isolation ./tools/python` gives an importable package;
#   3. the systemd units: `systemd-analyze verify`, then their ExecStart and
#      ExecStop commands run by hand on a private config (pool created, then
#      reused; the view mounted with the pool as its source; stopped);
#   4. the mount forms: `mount -t fuse.l1fs POOL DIR -o ...`, an fstab line
#      (mount -T FILE), and the mount helper as mount(8) calls it;
#   5. two pools through one real node_exporter textfile collector: no
#      error, both pools' series there;
#   6. make uninstall leaves nothing.
# Steps that need what is missing (root, /dev/fuse, systemd-analyze,
# prometheus-node-exporter) are skipped with the reason.  Exit status 0 if
# every check that ran passed.
set -u
BUILD=${BUILD:-build}
case $BUILD in
*asan* | *tsan*)
	# an installed sanitizer build needs its runtime preloaded into every
	# program that loads it (the C example, python): packaging is the plain
	# pass's to check, memory safety the sanitizer pass's
	echo "skip test_install.sh: BUILD=$BUILD is a sanitizer build; the plain pass installs"
	exit 0 ;;
esac
ROOT=$(pwd)
dir=${L1_TEST_DIR:-${L1_TEST_SHM_DIR:-/dev/shm/l1test-$(id -u)}}
tmp=$(mktemp -d /tmp/l1install.XXXXXX)
fail=0
mnts=""
pids=""
pools=""

say() { printf '%s\n' "$*"; }
check() { # description, command...
	d=$1; shift
	if "$@"; then say "ok   $d"; else say "FAIL $d"; fail=1; fi
}
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for m in $mnts; do
		fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	for p in $pids; do wait "$p" 2>/dev/null; done
	for p in $pools; do "$BUILD/bin/l1ctl" destroy --force --path "$p" >/dev/null 2>&1; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mk() { make -s --no-print-directory BUILD="$BUILD" "$@" >"$tmp/make.log" 2>&1 ||
	{ say "FAIL make $*:"; tail -n 20 "$tmp/make.log"; exit 1; }; }

# ---- 1. DESTDIR install ------------------------------------------------------
dest=$tmp/dest
mk install DESTDIR="$dest" PREFIX=/usr/local MOUNTHELPERDIR=/sbin
lib=$dest/usr/local/lib
for f in usr/local/lib/libl1arena.so.1.0.0 usr/local/lib/libl1arena.so.1 \
	 usr/local/lib/libl1arena.so usr/local/lib/libl1arena.a usr/local/include/l1arena.h \
	 usr/local/lib/pkgconfig/l1arena.pc usr/local/bin/l1ctl usr/local/bin/l1fs \
	 usr/local/bin/l1arena-pool usr/local/share/man/man1/l1ctl.1 \
	 usr/local/share/man/man1/l1fs.1 usr/local/share/man/man3/l1arena.3 \
	 usr/local/lib/systemd/system/l1arena@.service usr/local/lib/systemd/system/l1fs@.service \
	 sbin/mount.fuse.l1fs usr/local/etc/l1arena/example.conf.sample; do
	[ -e "$dest/$f" ] || { say "FAIL make install did not install /$f"; fail=1; }
done
check "the library's soname is libl1arena.so.1" \
	sh -c 'readelf -d "$0" | grep -q "SONAME.*\[libl1arena.so.1\]"' "$lib/libl1arena.so.1.0.0"
if grep -rq "$dest" "$dest/usr/local/lib/pkgconfig" "$dest/usr/local/lib/systemd" "$dest/sbin"; then
	say "FAIL the staging directory leaked into an installed file"; fail=1
fi

export PKG_CONFIG_PATH="$lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest"
flags=$(pkg-config --cflags --libs l1arena)
check "pkg-config --cflags --libs l1arena points into the staging tree" \
	sh -c 'case "$0" in *"-I$1/usr/local/include"*"-L$1/usr/local/lib"*"-ll1arena"*) ;; *) exit 1 ;; esac' \
	"$flags" "$dest"
check "pkg-config --modversion l1arena is 1.0.0" test "$(pkg-config --modversion l1arena)" = 1.0.0
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
awk '/^```c$/ {on=1; next} /^```$/ {if (on) exit} on {print}' README.md >"$tmp/example.c"
# shellcheck disable=SC2086
if cc -std=gnu11 -Wall -Werror -o "$tmp/example" "$tmp/example.c" $flags; then
	out=$(LD_LIBRARY_PATH="$lib" "$tmp/example")
	check "the README example, built with pkg-config, runs against the installed library" \
		test "$out" = "used 163840 of 67108864 bytes"
	check "it links libl1arena.so.1" sh -c 'readelf -d "$0" | grep -q "NEEDED.*libl1arena.so.1\]"' \
		"$tmp/example"
else
	say "FAIL the README example does not build with pkg-config: $flags"; fail=1
fi

pydir=$(cd "$dest" && find . -path '*-packages/l1arena/__init__.py' | head -n 1)
pydir=${pydir%/l1arena/__init__.py}
pyout=$(cd /tmp && PYTHONPATH="$dest/$pydir" LD_LIBRARY_PATH="$lib" /usr/bin/python3 -c '
import l1arena, l1arena._installed as i
print(i.LIBDIR, l1arena.LIB_PATH, l1arena.__file__)' 2>&1)
check "the installed Python package imports (libdir baked in: /usr/local/lib)" \
	sh -c 'case "$0" in "/usr/local/lib libl1arena.so.1 $1"*) ;; *) echo "$0"; exit 1 ;; esac' \
	"$pyout" "$dest"

if command -v man >/dev/null 2>&1; then
	for m in "$dest"/usr/local/share/man/man*/*; do
		w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$m" 2>&1 >/dev/null)
		n=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$m" 2>/dev/null | wc -l)
		check "man page $(basename "$m") renders without warnings ($n lines)" \
			sh -c '[ -z "$0" ] && [ "$1" -gt 20 ]' "$w" "$n"
	done
else
	say "skip man pages: man is not installed"
fi

mk uninstall DESTDIR="$dest" PREFIX=/usr/local MOUNTHELPERDIR=/sbin
left=$(find "$dest" ! -type d | head -n 5)
check "make uninstall removes every file it installed" test -z "$left"

# ---- 2. PREFIX install: Python finds the library by itself; pip ------------------
pre=$tmp/prefix
mk install PREFIX="$pre" MOUNTHELPERDIR="$pre/sbin"
pypre=$(cd "$pre" && find . -path '*-packages/l1arena/__init__.py' | head -n 1)
pypre=$pre/${pypre#./}
pypre=${pypre%/l1arena/__init__.py}
pyout=$(cd /tmp && env -u L1ARENA_LIB -u LD_LIBRARY_PATH PYTHONPATH="$pypre" /usr/bin/python3 -c '
import l1arena; print(l1arena.LIB_PATH)' 2>&1)
check "installed under PREFIX, the package loads \$PREFIX/lib/libl1arena.so.1 with no environment" \
	test "$pyout" = "$pre/lib/libl1arena.so.1"

if /usr/bin/python3 -m pip --version >/dev/null 2>&1; then
	# offline: the system's setuptools, no index
	if /usr/bin/python3 -m pip install -q --no-build-isolation --no-index --no-deps \
		--target "$tmp/pip" ./tools/python >"$tmp/pip.log" 2>&1; then
		pyout=$(cd /tmp && env -u L1ARENA_LIB PYTHONPATH="$tmp/pip" /usr/bin/python3 -c '
import l1arena; print(l1arena.LIB_PATH)' 2>&1)
		check "pip install --no-build-isolation ./tools/python (offline) imports, library bundled" \
			test "$pyout" = "$tmp/pip/l1arena/libl1arena.so"
	else
		say "FAIL pip install --no-build-isolation ./tools/python:"; tail -n 5 "$tmp/pip.log"; fail=1
	fi
	rm -rf tools/python/build tools/python/l1arena.egg-info
else
	say "skip pip: python3 -m pip is not installed"
fi

# ---- 3. systemd units -----------------------------------------------------------
units=$pre/lib/systemd/system
if command -v systemd-analyze >/dev/null 2>&1; then
	mkdir -p "$tmp/units"
	for u in l1arena l1fs; do
		sed "s|ConditionPathExists=.*|ConditionPathExists=$tmp/conf/%i.conf|" \
			"$units/$u@.service" >"$tmp/units/$u@t1.service"
	done
	if SYSTEMD_UNIT_PATH="$tmp/units:" systemd-analyze verify --man=no \
		"$tmp/units/l1arena@t1.service" "$tmp/units/l1fs@t1.service" >"$tmp/verify" 2>&1; then
		say "ok   systemd-analyze verify l1arena@t1.service l1fs@t1.service"
	else
		say "FAIL systemd-analyze verify:"; sed 's/^/       /' "$tmp/verify"; fail=1
	fi
else
	say "skip systemd-analyze verify: systemd-analyze missing (Debian package systemd)"
fi

mkdir -p "$tmp/conf"
pool1=$dir/inst1-$$
pools="$pool1"
view=$tmp/view1
hp=0
shm=yes
if [ "${L1_TEST_HUGETLBFS:-0}" = 1 ]; then hp=auto; shm=no; fi
cat >"$tmp/conf/t1.conf" <<EOF
HUGETLBFS=$dir
POOL_PATH=$pool1
SIZE=16M
HUGEPAGES=$hp
ALLOW_SHM=$shm
CREATE_OPTIONS="--eager --max-objects 2048"
DESTROY_ON_STOP=yes
VIEW=$view
VIEW_OPTIONS=gc_interval=1
EOF
# the units' own command lines, %i as systemd would expand it
unitcmd() { sed -n "s/^$2=//p" "$units/$1@.service" | sed 's/%i/t1/g'; }
run_unit() { # unit, key
	c=$(unitcmd "$1" "$2")
	# shellcheck disable=SC2086
	L1ARENA_CONFDIR=$tmp/conf $c
}
out=$(run_unit l1arena ExecStart 2>&1)
check "l1arena@t1 ExecStart creates the pool of t1.conf" \
	sh -c 'echo "$0" | grep -q "^created $1: 16.00 MiB eager pool"' "$out" "$pool1"
[ -e "$pool1" ] || say "       $out"
out=$(run_unit l1arena ExecStart 2>&1)
check "l1arena@t1 ExecStart again reuses it" sh -c 'echo "$0" | grep -q "reusing it"' "$out"

have_fuse=1
{ [ -r /dev/fuse ] && [ -w /dev/fuse ] && command -v fusermount3 >/dev/null; } || have_fuse=0
wait_mount() { # dir: 0 once it is a mount of the view
	for _ in $(seq 100); do
		findmnt -n "$1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
wait_unmount() {
	for _ in $(seq 100); do
		findmnt -n "$1" >/dev/null 2>&1 || return 0
		sleep 0.1
	done
	return 1
}
if [ $have_fuse = 1 ]; then
	c=$(unitcmd l1fs ExecStart)
	# shellcheck disable=SC2086
	L1ARENA_CONFDIR=$tmp/conf $c >"$tmp/view1.log" 2>&1 &
	vpid=$!
	pids="$vpid"
	mnts="$view"
	if wait_mount "$view"; then
		src=$(findmnt -n -o SOURCE,FSTYPE "$view" | tr -s ' ')
		check "l1fs@t1 ExecStart mounts the view: source l1arena:POOL, type fuse.l1fs ($src)" \
			test "$src" = "l1arena:$pool1 fuse.l1fs"
		check "the view's stats name the pool" grep -q "^pool  *$pool1 " "$view/stats"
		kill -TERM "$vpid"
		wait "$vpid"
		rc=$?
		check "SIGTERM stops the view (exit $rc) and unmounts it" \
			sh -c '[ "$0" -eq 0 ] && ! findmnt -n "$1" >/dev/null' "$rc" "$view"
	else
		say "FAIL l1fs@t1 ExecStart did not mount $view:"; sed 's/^/       /' "$tmp/view1.log"; fail=1
	fi
	pids=""; mnts=""
else
	say "skip the view unit: /dev/fuse or fusermount3 unusable"
fi

# ---- 4. mount -t fuse.l1fs, fstab, the helper -------------------------------------
if [ $have_fuse = 1 ] && [ "$(id -u)" -eq 0 ] && [ -e "$pool1" ]; then
	m=$tmp/mnt
	mkdir -p "$m"
	mnts="$m"
	# mount(8) looks for mount.fuse.l1fs in /sbin only: in a private mount
	# namespace, an overlay adds the installed helper to /usr/sbin; l1fs is
	# not on PATH there, so the helper must find it itself
	printf '%s %s fuse.l1fs defaults,nofail,noauto,gc_interval=1,x-systemd.after=l1arena@t1.service 0 0\n' \
		"$pool1" "$m" >"$tmp/fstab"
	cat >"$tmp/mounts.sh" <<'EOF'
set -u
pool=$1 m=$2 fstab=$3 sbin=$4
up() { for _ in $(seq 100); do findmnt -n "$m" >/dev/null && return 0; sleep 0.1; done; return 1; }
down() { for _ in $(seq 100); do findmnt -n "$m" >/dev/null || return 0; sleep 0.1; done; return 1; }
mount -t overlay overlay -o "lowerdir=$sbin:/usr/sbin" /usr/sbin 2>/dev/null ||
	{ echo "skip mount -t fuse.l1fs: no overlayfs to add the helper to /sbin privately"; exit 0; }
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
if mount -t fuse.l1fs "$pool" "$m" -o gc_interval=1 && up && grep -q "^pool  *$pool " "$m/stats"; then
	echo "ok   mount -t fuse.l1fs POOL DIR -o gc_interval=1 ($(findmnt -n -o SOURCE "$m"))"
else
	echo "FAIL mount -t fuse.l1fs POOL DIR -o gc_interval=1"
fi
umount "$m" 2>/dev/null; down || echo "FAIL umount of the view"
if mount -T "$fstab" "$m" && up && grep -q "^pool  *$pool " "$m/stats"; then
	echo "ok   an fstab line (fuse.l1fs, defaults,nofail,noauto,x-systemd.*) mounts with mount DIR"
else
	echo "FAIL fstab line: $(cat "$fstab")"
fi
umount "$m" 2>/dev/null; down || echo "FAIL umount of the fstab view"
EOF
	unshare -m --propagation private sh "$tmp/mounts.sh" "$pool1" "$m" "$tmp/fstab" "$pre/sbin" \
		>"$tmp/mounts.out" 2>&1
	cat "$tmp/mounts.out"
	grep -q "^FAIL" "$tmp/mounts.out" && fail=1
	# the helper, called as mount(8) calls it, with no l1fs on PATH
	if env PATH=/usr/sbin:/usr/bin:/sbin:/bin "$pre/sbin/mount.fuse.l1fs" "$pool1" "$m" \
		-o rw,nosuid,nodev,gc_interval=1 2>"$tmp/mount.err" && wait_mount "$m"; then
		check "mount.fuse.l1fs POOL DIR -o rw,nosuid,nodev,... (finds its l1fs)" \
			grep -q "^pool  *$pool1 " "$m/stats"
		umount "$m"; wait_unmount "$m"
	else
		say "FAIL mount.fuse.l1fs: $(cat "$tmp/mount.err")"; fail=1
	fi
	mnts=""
else
	say "skip mount -t fuse.l1fs and fstab: needs root and a usable /dev/fuse"
fi

# ---- 5. two pools through one node_exporter --------------------------------------
ne=$(command -v prometheus-node-exporter || command -v node_exporter || true)
pool2=$dir/inst2-$$
pools="$pool1 $pool2"
if [ -n "$ne" ] && [ -e "$pool1" ] &&
   "$BUILD/bin/l1ctl" create --path "$pool2" --size 8M --eager --allow-shm >/dev/null 2>&1; then
	mkdir -p "$tmp/textfile"
	printf 'y' | "$BUILD/bin/l1ctl" put --path "$pool2" --key fleet --publish >/dev/null 2>&1
	"$BUILD/bin/l1ctl" metrics --path "$pool1" --textfile "$tmp/textfile" >/dev/null &&
		"$BUILD/bin/l1ctl" metrics --path "$pool2" --textfile "$tmp/textfile" >/dev/null
	port=""
	for try in 1 2 3 4 5; do
		p=$((20000 + ($$ * 7 + try * 131) % 20000))
		"$ne" --web.listen-address="127.0.0.1:$p" --collector.disable-defaults \
			--collector.textfile --collector.textfile.directory="$tmp/textfile" \
			>"$tmp/ne.log" 2>&1 &
		nepid=$!
		pids="$nepid"
		for _ in $(seq 50); do
			curl -sf "http://127.0.0.1:$p/metrics" >"$tmp/scrape" 2>/dev/null && { port=$p; break; }
			kill -0 "$nepid" 2>/dev/null || break
			sleep 0.1
		done
		[ -n "$port" ] && break
		kill "$nepid" 2>/dev/null; wait "$nepid" 2>/dev/null; pids=""
	done
	if [ -n "$port" ]; then
		n1=$(grep -c "^l1arena_[a-z_]*{pool=\"$pool1\"" "$tmp/scrape")
		n2=$(grep -c "^l1arena_[a-z_]*{pool=\"$pool2\"" "$tmp/scrape")
		check "node_exporter serves both pools' series ($n1 and $n2)" \
			sh -c '[ "$0" -gt 30 ] && [ "$0" -eq "$1" ]' "$n1" "$n2"
		check "node_exporter reports no textfile error" \
			grep -q '^node_textfile_scrape_error 0$' "$tmp/scrape"
		curl -sf "http://127.0.0.1:$port/metrics" >"$tmp/scrape2" 2>/dev/null
		kill "$nepid"; wait "$nepid" 2>/dev/null; pids=""
		if grep -Eiq "collected before|error" "$tmp/ne.log"; then
			say "FAIL node_exporter logged errors:"; grep -Ei "collected before|error" "$tmp/ne.log" |
				head -n 5; fail=1
		else
			say "ok   node_exporter logged no error over two scrapes"
		fi
	else
		say "FAIL node_exporter did not start:"; tail -n 5 "$tmp/ne.log"; fail=1
	fi
elif [ -z "$ne" ]; then
	say "skip node_exporter: prometheus-node-exporter is not installed (tools/install-deps.sh)"
fi

# ---- the pool unit's stop, and uninstall ------------------------------------------
out=$(run_unit l1arena ExecStop 2>&1)
check "l1arena@t1 ExecStop destroys the pool (DESTROY_ON_STOP=yes)" \
	sh -c '[ ! -e "$0" ] && echo "$1" | grep -q "^destroyed "' "$pool1" "$out"
mk uninstall PREFIX="$pre" MOUNTHELPERDIR="$pre/sbin"
left=$(find "$pre" ! -type d | head -n 5)
check "make uninstall PREFIX=... removes every file" test -z "$left"

[ $fail -eq 0 ] && say "test_install.sh: all checks passed"
exit $fail
