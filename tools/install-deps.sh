#!/bin/sh
# install-deps.sh - installs the Debian packages l1arena needs to build, test
# and run, when run as root; otherwise prints the one command that does it.
# Idempotent: asks apt only for what dpkg says is missing.
set -eu
# one package per line, so that branches adding packages merge cleanly
PKGS="
build-essential
pkg-config
libfuse3-dev
fuse3
liburing-dev
check
python3
python3-pytest
python3-numpy
python3-pip
python3-setuptools
attr
util-linux
procps
clang-14
libclang-rt-14-dev
prometheus
systemd
libucx-dev
ucx-utils
"
# installed without their recommends (node-exporter's would pull in collectors
# and services a test machine does not want)
NORECS="
prometheus-node-exporter
"
missing=""
missing_norecs=""
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in $PKGS; do
	installed "$p" || missing="$missing $p"
done
for p in $NORECS; do
	installed "$p" || missing_norecs="$missing_norecs $p"
done
[ -z "$missing$missing_norecs" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "l1arena needs these Debian packages:$missing$missing_norecs" >&2
	echo "install them with: sudo apt-get update${missing:+ && sudo apt-get install -y$missing}${missing_norecs:+ && sudo apt-get install -y --no-install-recommends$missing_norecs}" >&2
	exit 1
fi
echo "installing:$missing$missing_norecs"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
[ -z "$missing" ] || apt-get install -y -q $missing >/dev/null
[ -z "$missing_norecs" ] || apt-get install -y -q --no-install-recommends $missing_norecs >/dev/null
