"""Zero-copy: a write through a NumPy view is the bytes at the C pointer
(ctypes.string_at) and in the vm space, writes at the C pointer show in the
view, and (when build/bin/l1fs is built) a mounted FUSE view of the pool
serves the same bytes, and open_path() of a view path hands back the very
same memory of this process's mapping."""

import ctypes
import mmap
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
import pytest

from l1arena import L1Error, L1Exception, MemoryLayoutDesc, MISSING_FUNCTIONS
from conftest import ROOT, child_env

KV = MemoryLayoutDesc(shapes=[(2, 32, 128)], dtypes=[np.float16])
BUILD = os.environ.get("BUILD", "build")
L1FS = os.path.join(ROOT, BUILD, "bin", "l1fs")


def test_numpy_view_is_the_c_memory(pool):
    err, objs = pool.allocate(KV, 4)
    o = objs[2]
    a = o.array
    a[...] = np.arange(a.size, dtype=np.float16).reshape(a.shape)
    assert ctypes.string_at(o.ptr, a.nbytes) == a.tobytes()
    vm = pool.get_vm_space_info()
    assert vm.array[o.offset:o.offset + a.nbytes].tobytes() == a.tobytes()
    # and the other way: bytes written at the C pointer appear in the view
    ctypes.memset(o.ptr, 0, a.nbytes)
    assert not a.any()
    ctypes.memmove(o.ptr, np.full(4, 2.5, np.float16).tobytes(), 8)
    assert list(a[0, 0, :4]) == [2.5] * 4
    assert np.shares_memory(a, vm.array)
    del a, vm
    assert pool.free(objs) == L1Error.SUCCESS


def test_views_are_not_copies_across_managers_of_one_pool(pools):
    from l1arena import L1MemoryManager
    m = pools()
    err, objs = m.allocate(KV, 1)
    other = L1MemoryManager.attach(m.path)
    try:
        w = objs[0].array                   # made before publish: writable
        assert m.publish(objs[0], "shared") == L1Error.SUCCESS
        seen = other.lookup("shared")
        assert seen.ptr != objs[0].ptr      # another mapping of the same file
        w[1, 2, 3] = 11
        assert seen.array[1, 2, 3] == 11
        assert not seen.array.flags.writeable
        assert not objs[0].byte_array.flags.writeable   # made after publish
        del seen, w
    finally:
        other.close()
    assert m.free(objs) == L1Error.SUCCESS


@pytest.fixture
def l1fs_mount(pool):
    if not os.path.exists(L1FS):
        pytest.skip("l1fs is not built (%s): the FUSE part of zero-copy is not "
                    "tested" % L1FS)
    if not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"):
        pytest.skip("no /dev/fuse or fusermount3: cannot mount the l1fs view")
    mnt = tempfile.mkdtemp(prefix="l1py-view-")
    proc = subprocess.Popen([L1FS, mnt, "--arena", pool.path, "-f",
                             "-o", "gc_interval=0"], env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not os.path.ismount(mnt):
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace")
                pytest.fail("l1fs exited %s: %s" % (proc.returncode, out))
            if time.monotonic() > deadline:
                pytest.fail("l1fs did not mount %s in 20 s" % mnt)
            time.sleep(0.05)
        yield pool, mnt
    finally:
        subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-uz", mnt], capture_output=True)
        os.rmdir(mnt)


def test_write_through_view_is_seen_through_fuse(l1fs_mount):
    pool, mnt = l1fs_mount
    err, objs = pool.allocate(KV, 2)
    o = objs[0]
    rng = np.random.default_rng(3)
    o.array[...] = rng.standard_normal(o.array.shape).astype(np.float16)
    want = o.array.tobytes()
    assert pool.publish(o, "fuse-key") == L1Error.SUCCESS
    by_id = os.path.join(mnt, "objects", str(o.id))
    by_key = os.path.join(mnt, "keys", "fuse-key")
    deadline = time.monotonic() + 5          # entry_timeout is 1 s
    while not os.path.exists(by_key) and time.monotonic() < deadline:
        time.sleep(0.1)
    with open(by_id, "rb") as f:
        assert f.read(len(want)) == want
    with open(by_key, "rb") as f:
        assert f.read(len(want)) == want
    with open(by_id, "rb") as f:
        with mmap.mmap(f.fileno(), o.size, prot=mmap.PROT_READ) as mm:
            assert mm[:len(want)] == want
    # an unpublished object, read through the view after a numpy write
    u = objs[1]
    u.array[...] = 1.5
    with open(os.path.join(mnt, "objects", str(u.id)), "rb") as f:
        assert f.read(u.array.nbytes) == u.array.tobytes()
    assert pool.free(objs) == L1Error.SUCCESS


def test_open_path_is_zero_copy(l1fs_mount):
    if "l1_open_path" in MISSING_FUNCTIONS:
        pytest.skip("libl1arena does not export l1_open_path yet")
    pool, mnt = l1fs_mount
    err, objs = pool.allocate(KV, 1)
    o = objs[0]
    o.array[...] = 6
    assert pool.publish(o, "path-key") == L1Error.SUCCESS
    deadline = time.monotonic() + 5
    while not os.path.exists(os.path.join(mnt, "keys", "path-key")) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    for p in (os.path.join(mnt, "keys", "path-key"),
              os.path.join(mnt, "objects", str(o.id))):
        with pool.open_path(p) as v:
            assert v.held and v.id == o.id
            assert v.ptr == o.ptr                      # the same memory
            assert np.shares_memory(v.array, o.array)
            o.array[0, 0, 0] = 8                       # writer's view
            assert v.array[0, 0, 0] == 8
            o.array[0, 0, 0] = 6
    with pytest.raises(L1Exception):
        pool.open_path(os.path.join(mnt, "keys", "no-such-key"))
    assert pool.free(objs) == L1Error.SUCCESS
