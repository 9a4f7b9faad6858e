"""xfer_data.py - test data for tests/sh/test_xfer.sh, through the Python
binding: `fill POOL PREFIX N LAYOUT...` publishes N objects under PREFIX00000,
PREFIX00001, ... cycling through the layouts ("[2,32,128]:fp16;[4]:int32"),
each filled with bytes derived from its key; `check POOL PREFIX N [FIRST]`
holds each key and checks its bytes (the layout's span; a fetched object's
rounding is not data), exit 1 on the first missing key or wrong byte;
`absent POOL PREFIX N FIRST` checks that none of those keys is published;
`exact POOL PREFIX N` checks the bytes of those that are, and prints how
many there are ("exact: K of N published")."""

import sys
import zlib

import numpy as np
from l1arena import L1MemoryManager, MemoryLayoutDesc, L1Error


def layout(spec):
    shapes, dtypes = [], []
    for t in spec.split(";"):
        shape, dt = t.split(":")
        shapes.append(tuple(int(x) for x in shape.strip("[]").split(",")))
        dtypes.append(dt)
    return MemoryLayoutDesc(shapes=shapes, dtypes=dtypes)


def pattern(key, n):
    return np.random.default_rng(zlib.crc32(key.encode())).integers(
        0, 256, n, dtype=np.uint8)


def span(obj):
    last = obj.arrays[-1]
    return last.ctypes.data + last.nbytes - obj.ptr


def main():
    cmd, pool, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    m = L1MemoryManager.attach(pool)
    if cmd == "fill":
        specs = [layout(s) for s in sys.argv[5:]]
        groups = [[i for i in range(n) if i % len(specs) == k] for k in range(len(specs))]
        for spec, idx in zip(specs, groups):
            if not idx:
                continue
            err, objs = m.allocate(spec, len(idx))
            if err != L1Error.SUCCESS:
                sys.exit("fill: allocate %d: %s" % (len(idx), err))
            for i, o in zip(idx, objs):
                key = "%s%05d" % (prefix, i)
                s = span(o)
                o.byte_array[:s] = pattern(key, s)
                if m.publish(o, key) != L1Error.SUCCESS:
                    sys.exit("fill: publish %s failed" % key)
        print("filled %d objects" % n)
        return
    first = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    present = 0
    for i in range(first, first + n):
        key = "%s%05d" % (prefix, i)
        o = m.lookup(key)
        if cmd == "absent":
            if o is not None:
                sys.exit("absent: %s is published" % key)
            continue
        if o is None:
            if cmd == "exact":
                continue
            sys.exit("check: %s is not published" % key)
        present += 1
        with m.hold(key) as h:
            s = span(h)
            got = np.array(h.byte_array[:s])
        if not np.array_equal(got, pattern(key, s)):
            bad = int(np.argmax(got != pattern(key, s)))
            sys.exit("check: %s differs at byte %d of %d" % (key, bad, s))
    if cmd == "exact":
        print("exact: %d of %d published" % (present, n))
    else:
        print("%s: %d keys ok" % (cmd, n))


main()
