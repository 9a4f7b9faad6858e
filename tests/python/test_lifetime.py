"""A view never outlives the mapping silently: close() with live views
raises L1ViewsAliveError (and leaves the manager usable), close(wait=)
waits for them, a dropped manager keeps its mapping while views exist, and
nothing handed out by a closed manager can reach unmapped memory.  Views
inherited across fork stay valid; the inherited manager is refused."""

import gc
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from l1arena import (L1Error, L1Exception, L1ViewsAliveError, L1MemoryManager,
                     MemoryLayoutDesc)
from conftest import config, child_env, forks

KV = MemoryLayoutDesc(shapes=[(2, 32, 128)], dtypes=[np.float16])


def test_close_refuses_with_live_view_then_succeeds(pool):
    err, objs = pool.allocate(KV, 2)
    a = objs[0].array
    a[...] = 3
    with pytest.raises(L1ViewsAliveError) as ei:
        pool.close()
    assert ei.value.live_views >= 1 and "live view" in str(ei.value)
    assert ei.value.error == L1Error.BUSY
    # still open and usable
    assert not pool.closed and (a == 3).all()
    assert pool.get_memory_usage()[0] == 2 * 16384
    assert pool.free(objs) == L1Error.SUCCESS
    del a
    pool.close()
    assert pool.closed
    pool.close()                                   # idempotent


@pytest.mark.parametrize("kind", ["slice", "memoryview", "vm_space",
                                  "vm_space_info", "byte_array", "raw_tensor",
                                  "derived"])
def test_every_kind_of_view_counts(pool, kind):
    err, objs = pool.allocate(KV, 1)
    o = objs[0]
    if kind == "slice":
        v = o.array[1, 3:5]
    elif kind == "memoryview":
        v = memoryview(o.array)
    elif kind == "vm_space":
        v = pool.get_vm_space()
    elif kind == "vm_space_info":
        v = pool.get_vm_space_info().array
    elif kind == "raw_tensor":
        v = o.raw_tensor
    elif kind == "byte_array":
        v = o.byte_array
    else:
        v = o.array.view(np.uint16).reshape(-1)[::2]
    del o
    with pytest.raises(L1ViewsAliveError):
        pool.close()
    del v
    pool.free(objs)
    pool.close()


def test_cached_views_in_memoryobjs_do_not_block_close(pool):
    err, objs = pool.allocate(KV, 8)
    for o in objs:
        o.array[...] = 1                           # views cached in objs
    pool.publish(objs[0], "kept")                  # survives its writer
    pool.close()                                   # objs still referenced
    with pytest.raises(L1Exception, match="closed"):
        objs[1].array
    with pytest.raises(L1Exception, match="closed"):
        objs[0].tensors


def test_close_wait_for_views_released_by_another_thread(pool):
    err, objs = pool.allocate(KV, 1)
    holder = [objs[0].array]

    def drop():
        time.sleep(0.2)
        holder.clear()

    t = threading.Thread(target=drop)
    t.start()
    pool.free(objs)
    pool.close(wait=10)
    t.join()
    assert pool.closed


def test_close_collects_cycles(pool):
    err, objs = pool.allocate(KV, 1)

    class Cycle:
        pass

    c = Cycle()
    c.me = c
    c.view = objs[0].array
    del c
    pool.free(objs)
    pool.close()                                   # gc.collect() breaks it


def test_dropped_manager_keeps_mapping_for_views(pools):
    p = pools.path()
    m = L1MemoryManager(config(p))
    err, objs = m.allocate(KV, 1)
    a = objs[0].array
    a[...] = 9
    del m, objs
    gc.collect()
    # the manager is gone, its mapping is not: the view still works
    assert (a == 9).all()
    a[...] = 4
    assert (a == 4).all()
    del a
    gc.collect()                                   # now it detaches


def test_views_after_free_and_release_raise(pool):
    err, objs = pool.allocate(KV, 1)
    pool.free(objs)
    with pytest.raises(L1Exception, match="freed"):
        objs[0].arrays
    with pytest.raises(L1Exception, match="freed"):
        objs[0].byte_array


FORK_CHILD = r"""
import os, sys, numpy as np
from l1arena import L1MemoryManager, MemoryLayoutDesc, L1Exception, L1Error
path = sys.argv[1]
m = L1MemoryManager.attach(path)
err, objs = m.allocate(MemoryLayoutDesc(shapes=[(8,)], dtypes=[np.int64]), 1)
a = objs[0].array
a[:] = 42
pid = os.fork()
if pid == 0:
    code = 0
    try:
        if not (a == 42).all():            # inherited view: still valid
            code = 2
        a[0] = 43                          # MAP_SHARED: the parent sees it
        try:
            m.allocate(MemoryLayoutDesc(shapes=[(8,)], dtypes=[np.int64]), 1)
            code = 3                       # inherited manager must refuse
        except L1Exception as e:
            if "fork" not in str(e):
                code = 4
        c = L1MemoryManager.attach(path)   # attaching again works
        e2, o2 = c.allocate(MemoryLayoutDesc(shapes=[(8,)], dtypes=[np.int64]), 1)
        if e2 != L1Error.SUCCESS or c.free(o2) != L1Error.SUCCESS:
            code = 5
        c.close()
    except BaseException as e:
        print("child:", repr(e), flush=True)
        code = 6
    os._exit(code)
_, st = os.waitpid(pid, 0)
rc = os.waitstatus_to_exitcode(st)
assert rc == 0, "child exit %d" % rc
assert a[0] == 43
del a
assert m.free(objs) == L1Error.SUCCESS
assert m.memcheck(), m.last_memcheck_report
m.close()
print("ok")
"""


@forks
def test_fork_inherited_views_and_manager(pools):
    m = pools()
    r = subprocess.run([sys.executable, "-c", FORK_CHILD, m.path],
                       env=child_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stdout + r.stderr
    assert m.memcheck(), m.last_memcheck_report


def test_exit_without_close_is_clean(pools):
    m = pools()
    code = ("import numpy as np\n"
            "from l1arena import L1MemoryManager, MemoryLayoutDesc\n"
            "m = L1MemoryManager.attach(%r)\n"
            "err, objs = m.allocate(MemoryLayoutDesc(shapes=[(8,)], dtypes=['int64']), 4)\n"
            "keep = objs[0].array\n"
            "h = m.hold(objs[1].id)\n"
            "m.publish(objs[2], 'exit-key')\n" % m.path)
    r = subprocess.run([sys.executable, "-c", code], env=child_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    m.gc()
    assert m.memcheck(), m.last_memcheck_report
    assert m.lookup("exit-key") is not None
    assert not any(c["pid"] != os.getpid() and c["alive"] for c in m.clients())
