#!/usr/bin/env python3
"""bench.py - allocate+free of batches of MemoryObjs from Python, in µs per
object, beside the same loop with numpy.empty as the baseline, in one run.

    PYTHONPATH=tools/python python3 tools/python/bench.py [--batch 64]
        [--iters 2000] [--repeat 5] [--size 256M] [--path POOL [--allow-shm]]
        [--zero on|off|both] [--no-torch]

Layout [2,32,128] fp16 (16 KiB objects, LMCache's example).  Rows:
  alloc+free          allocate(layout, 64) then free(objs): one C call each
  alloc+touch+free    the same, writing one element of every object's tensor
                      (so every view is made)
  numpy.empty (+touch) the same loops with numpy.empty per object
  torch.empty+touch   with torch: the touched loop with torch.empty, since
                      touching a torch tensor costs more than a NumPy one
Zeroing on: freed memory is zeroed (io_uring) before reuse, as in production;
the loop then measures the caller's cost, which is what the Python side sees
(allocate waits for zeroing only when nothing clean is left).  Zeroing off
shows the allocator alone.  The pool goes on /dev/hugepages when it has room,
else /dev/shm (shm fallback); --path chooses.
"""

import argparse
import gc
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import l1arena
except ImportError:
    sys.path.insert(0, HERE)
    import l1arena

import numpy as np

from l1arena import (L1Error, L1MemoryManager, L1MemoryManagerConfig,
                     MemoryLayoutDesc, parse_size)
from l1arena.dtypes import get_torch

SHAPE = (2, 32, 128)


def hugepages_free(mnt="/dev/hugepages"):
    try:
        with open("/proc/mounts") as f:
            if not any(l.split()[1] == mnt and l.split()[2] == "hugetlbfs"
                       for l in f):
                return 0
        st = os.statvfs(mnt)
        return st.f_bavail * st.f_bsize
    except OSError:
        return 0


def best(fn, repeat):
    out = []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        gc.enable()
    return min(out)


def run(args, zero):
    size = parse_size(args.size)
    path = args.path
    allow_shm = args.allow_shm
    if not path:
        if hugepages_free() >= size + (64 << 20):
            path = "/dev/hugepages/l1bench-py-%d" % os.getpid()
        else:
            path = "/dev/shm/l1bench-py-%d" % os.getpid()
            allow_shm = True
    cfg = L1MemoryManagerConfig(size_in_bytes=size, use_lazy=False, path=path,
                                allow_shm=allow_shm, force=True, pin="off",
                                zero_on_free=zero)
    m = L1MemoryManager(cfg)
    try:
        return measure(args, m)
    finally:
        try:
            m.close(wait=5)
        finally:
            l1arena.destroy(path, force=True)


def measure(args, m):
    lay = MemoryLayoutDesc(shapes=[SHAPE], dtypes=[np.float16])
    B, N = args.batch, args.iters
    alloc, free = m.allocate, m.free
    use_torch = args.torch and get_torch() is not None

    def l1_plain():
        for _ in range(N):
            err, objs = alloc(lay, B)
            if err is not L1Error.SUCCESS:
                raise SystemExit("allocate: %s %s" % (err, m.last_error))
            free(objs)

    def l1_touch():
        for _ in range(N):
            err, objs = alloc(lay, B)
            if err is not L1Error.SUCCESS:
                raise SystemExit("allocate: %s %s" % (err, m.last_error))
            if use_torch:
                for o in objs:
                    o.tensor[0, 0, 0] = 1
            else:
                for o in objs:
                    o.array[0, 0, 0] = 1
            free(objs)

    empty, f16 = np.empty, np.float16

    def np_plain():
        for _ in range(N):
            objs = [empty(SHAPE, f16) for _ in range(B)]
            del objs

    def np_touch():
        for _ in range(N):
            objs = [empty(SHAPE, f16) for _ in range(B)]
            for a in objs:
                a[0, 0, 0] = 1
            del objs

    loops = [("l1arena alloc+free", l1_plain),
             ("numpy.empty", np_plain),
             ("l1arena alloc+touch+free", l1_touch),
             ("numpy.empty+touch", np_touch)]
    if use_torch:
        torch = get_torch()
        tshape, tf16 = torch.Size(SHAPE), torch.float16

        def torch_touch():
            for _ in range(N):
                objs = [torch.empty(tshape, dtype=tf16) for _ in range(B)]
                for t in objs:
                    t[0, 0, 0] = 1
                del objs
        loops.append(("torch.empty+touch", torch_touch))

    l1_plain()                                        # warm up
    rows = []
    per = 1e6 / (N * B)
    for name, fn in loops:
        rows.append((name, best(fn, args.repeat) * per))
    backing = m.usage()["backing"]
    m.flush()
    return rows, backing, m.memcheck()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--size", default="256M")
    ap.add_argument("--path", default=None,
                    help="pool file (default: /dev/hugepages if it has room, "
                    "else /dev/shm); it is created and removed")
    ap.add_argument("--allow-shm", action="store_true",
                    help="with --path: allow the shm fallback")
    ap.add_argument("--zero", choices=("on", "off", "both"), default="both")
    ap.add_argument("--no-torch", dest="torch", action="store_false",
                    help="touch NumPy views even when torch is importable")
    args = ap.parse_args()
    views = "torch" if args.torch and get_torch() is not None else "numpy"
    print("l1arena Python binding: batches of %d objects %s fp16 (16 KiB), "
          "%d batches, best of %d; touched views: %s; lib %s"
          % (args.batch, list(SHAPE), args.iters, args.repeat, views,
             l1arena.LIB_PATH))
    zs = {"on": [True], "off": [False], "both": [False, True]}[args.zero]
    for z in zs:
        rows, backing, ok = run(args, z)
        print("\nzero_on_free=%s, backing %s, memcheck %s" % (
            "on" if z else "off", backing, "clean" if ok else "NOT CLEAN"))
        print("  %-28s %10s" % ("loop", "us/object"))
        for name, us in rows:
            print("  %-28s %10.3f" % (name, us))
        base = dict(rows)
        print("  %-28s %10.2fx" % ("alloc+free / numpy.empty",
                                    base["l1arena alloc+free"] / base["numpy.empty"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
