#!/bin/sh
# install-deps.sh - installs the Debian packages l1arena needs to build, test
# and run, when run as root; otherwise prints the one command that does it.
# Idempotent: asks apt only for what dpkg says is missing, and only for those
# (--no-install-recommends: no servers or services come along).  The metrics
# check needs no Prometheus: tests/sh/metrics_lint.py applies promtool's
# rules (with python3-prometheus-client's parser as a second reader).
# librte-eal23 is DPDK's EAL library alone (rte_malloc/rte_free), loaded by
# l1bench sustain as a baseline; nothing else of DPDK comes along.
set -eu
# one package per line
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
python3-prometheus-client
python3-torch
python3-setuptools
attr
util-linux
procps
clang-14
libclang-rt-14-dev
systemd
prometheus-node-exporter
libucx-dev
ucx-utils
librte-eal23
"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "l1arena needs these Debian packages:$missing" >&2
	echo "install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends $missing >/dev/null
