"""Concurrent allocate/free from threads and from multiprocessing processes
(spawn and fork), with every object's bytes checked and memcheck clean
after; bytes written through a view in one process read by key in another."""

import multiprocessing as mp
import os
import threading

import numpy as np
import pytest

from l1arena import L1Error, L1MemoryManager, MemoryLayoutDesc
from conftest import MiB, child_env, forks

KV = MemoryLayoutDesc(shapes=[(2, 32, 128)], dtypes=[np.float16])
ROUNDS = 200


def churn(m, seed, rounds, errors):
    """Allocates batches, stamps and checks every object, frees them."""
    rng = np.random.default_rng(seed)
    lay = MemoryLayoutDesc(shapes=[(2, 32, 128)], dtypes=[np.float16])
    mine = []
    for r in range(rounds):
        n = int(rng.integers(1, 24))
        err, objs = m.allocate(lay, n)
        if err == L1Error.OUT_OF_MEMORY:
            pass
        elif err != L1Error.SUCCESS:
            errors.append("allocate: %s %s" % (err, m.last_error))
            return
        else:
            for i, o in enumerate(objs):
                a = o.array
                if a.any():
                    errors.append("object %#x not zeroed at allocation" % o.id)
                a[...] = (seed * 131 + r * 31 + i) % 2039   # exact in fp16
            mine.append(objs)
        if mine and (len(mine) > 3 or rng.random() < 0.5):
            batch = mine.pop(int(rng.integers(0, len(mine))))
            for o in batch:
                # a stamp of another thread/process in here = overlap
                if not (o.array == o.array.flat[0]).all():
                    errors.append("object %#x corrupted" % o.id)
            e = m.free(batch)
            if e != L1Error.SUCCESS:
                errors.append("free: %s %s" % (e, m.last_error))
                return
    for batch in mine:
        e = m.free(batch)
        if e != L1Error.SUCCESS:
            errors.append("free: %s %s" % (e, m.last_error))


def test_threads(pools):
    m = pools(size=32 * MiB)
    errors = []
    threads = [threading.Thread(target=churn, args=(m, s, ROUNDS, errors))
               for s in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    assert m.flush(timeout=30)
    assert m.get_memory_usage()[0] == 0
    assert m.memcheck(), m.last_memcheck_report


def _proc_churn(path, seed, rounds, q):
    try:
        m = L1MemoryManager.attach(path)
        errors = []
        ts = [threading.Thread(target=churn, args=(m, seed * 10 + k, rounds, errors))
              for k in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        m.close()
        q.put((seed, errors))
    except BaseException as e:  # report, do not hang the parent
        q.put((seed, ["%s: %r" % (type(e).__name__, e)]))


@pytest.mark.parametrize("method", ["spawn", pytest.param("fork", marks=forks)])
def test_processes(pools, method, monkeypatch):
    for k, v in child_env().items():
        monkeypatch.setenv(k, v)
    m = pools(size=32 * MiB)
    ctx = mp.get_context(method)
    q = ctx.Queue()
    procs = [ctx.Process(target=_proc_churn, args=(m.path, s, ROUNDS // 2, q))
             for s in range(1, 4)]
    for p in procs:
        p.start()
    # the parent churns at the same time
    errors = []
    churn(m, 99, ROUNDS // 2, errors)
    results = collect(q, procs)
    assert not errors, errors[:5]
    for seed, errs in results:
        assert not errs, (seed, errs[:5])
    m.gc()
    assert m.flush(timeout=30)
    assert m.get_memory_usage()[0] == 0
    assert m.memcheck(), m.last_memcheck_report


def collect(q, procs, timeout=300):
    """One result per process; fails at once when one dies without one."""
    import queue
    import time
    results = []
    deadline = time.monotonic() + timeout
    while len(results) < len(procs):
        try:
            results.append(q.get(timeout=0.5))
            continue
        except queue.Empty:
            pass
        dead = [p for p in procs if p.exitcode not in (None, 0)]
        assert not dead, "child exited %s without a result" % [p.exitcode for p in dead]
        assert time.monotonic() < deadline, "children did not report in %d s" % timeout
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


def _writer(path, key, seed, q):
    try:
        m = L1MemoryManager.attach(path)
        lay = MemoryLayoutDesc(shapes=[(2, 32, 128), (16,)], dtypes=["bf16", np.int32])
        err, objs = m.allocate(lay, 1)
        assert err == L1Error.SUCCESS, m.last_error
        o = objs[0]
        rng = np.random.default_rng(seed)
        o.arrays[0][...] = rng.integers(0, 1 << 16, size=(2, 32, 128), dtype=np.uint16)
        o.arrays[1][...] = np.arange(16) * seed
        assert m.publish(o, key) == L1Error.SUCCESS, m.last_error
        digest = (o.arrays[0].tobytes(), o.arrays[1].tobytes())
        del o, objs
        m.close()                      # the published object survives us
        q.put(("ok", digest))
    except BaseException as e:
        q.put(("error", repr(e)))


def test_write_in_one_process_read_by_key_in_another(pools, monkeypatch):
    for k, v in child_env().items():
        monkeypatch.setenv(k, v)
    m = pools()
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_writer, args=(m.path, "req-42/layer-0", 7, q))
    p.start()
    [(status, payload)] = collect(q, [p])
    assert status == "ok", payload
    with m.hold("req-42/layer-0") as o:
        assert o.layout.dtypes == ["bf16", np.dtype(np.int32)]
        assert o.arrays[0].dtype == np.uint16          # bf16: raw-typed
        assert (o.arrays[0].tobytes(), o.arrays[1].tobytes()) == payload
        assert o.info()["owner_pid"] == p.pid
    o = m.lookup("req-42/layer-0")
    assert m.free([o]) == L1Error.SUCCESS
    assert m.flush(timeout=30)
    assert m.lookup("req-42/layer-0") is None
    assert m.memcheck(), m.last_memcheck_report
