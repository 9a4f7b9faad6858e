"""l1arena.xfer: a real `l1xfer serve` on 127.0.0.1 (loopback device only)
with one pool, fetched from and pushed to through the binding by another:
bytes, skips, missing keys, prefix, listing.  Skipped where libl1xfer.so or
the l1xfer binary is not built (no libucx-dev)."""

import os
import subprocess

import numpy as np
import pytest

import l1arena
from conftest import ROOT, child_env

xfer = pytest.importorskip("l1arena.xfer")
BUILD = os.environ.get("BUILD", "build")
L1XFER = os.path.join(ROOT, BUILD, "bin", "l1xfer")


@pytest.fixture
def server(pools):
    try:
        xfer.load()
    except ImportError as e:
        pytest.skip(str(e))
    if not os.access(L1XFER, os.X_OK):
        pytest.skip("%s is not built (needs libucx-dev)" % L1XFER)
    src = pools(name="xfer-src")
    env = child_env(UCX_NET_DEVICES="lo")
    p = subprocess.Popen([L1XFER, "serve", "--arena", src.path, "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    line = p.stdout.readline()
    assert "listening on" in line, line
    os.environ.setdefault("UCX_NET_DEVICES", "lo")
    yield src, line.strip().rsplit(" ", 1)[1]
    p.terminate()
    p.wait(timeout=30)


def put(m, key, layout, seed):
    err, (o,) = m.allocate(layout, 1)
    assert err == l1arena.L1Error.SUCCESS
    data = np.random.default_rng(seed).integers(0, 256, o.size, dtype=np.uint8)
    o.byte_array[:] = data
    assert m.publish(o, key) == l1arena.L1Error.SUCCESS
    return data


def test_fetch_push_list(server, pools):
    src, addr = server
    dst = pools(name="xfer-dst")
    lay = [l1arena.MemoryLayoutDesc(shapes=[(2, 32, 128)], dtypes=["fp16"]),
           l1arena.MemoryLayoutDesc(shapes=[(3,), (2, 5)], dtypes=["uint8", "fp32"])]
    want = {"py/%d" % i: put(src, "py/%d" % i, lay[i % 2], i) for i in range(6)}
    with xfer.Peer(dst, addr) as peer:
        assert "rma:" in peer.transport
        assert sorted(peer.list("py/")) == sorted(want)
        r = peer.fetch(["py/0", "py/1", "py/2"])
        assert r.error == l1arena.L1Error.SUCCESS and r.moved == 3, r
        r = peer.fetch_prefix("py/")
        assert (r.moved, r.present) == (3, 3), r
        r = peer.fetch(["py/0", "nope"])
        assert r.error == l1arena.L1Error.NOT_FOUND and r.missing == 1
        assert "nope" in r.message
        for k, data in want.items():
            with dst.hold(k) as o:
                # what moves is the layout's span; the rest of an object is zero
                span = o.arrays[-1].ctypes.data + o.arrays[-1].nbytes - o.ptr
                assert np.array_equal(np.array(o.byte_array[:span]), data[:span]), k
        put(dst, "back/0", lay[0], 99)
        r = peer.push(["back/0"])
        assert r.moved == 1, r
    with src.hold("back/0") as o, dst.hold("back/0") as d:
        assert np.array_equal(o.byte_array, d.byte_array)
    r = xfer.fetch(dst, addr, prefix="py/")
    assert r.present == 6 and r.moved == 0


def test_connect_refused(pools):
    try:
        xfer.load()
    except ImportError as e:
        pytest.skip(str(e))
    m = pools(name="xfer-lonely")
    os.environ.setdefault("UCX_NET_DEVICES", "lo")
    with pytest.raises(l1arena.L1Exception) as e:
        xfer.Peer(m, "127.0.0.1:1")
    assert "127.0.0.1:1" in str(e.value)
