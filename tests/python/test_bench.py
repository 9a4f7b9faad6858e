"""tools/python/bench.py runs, prints µs per object for every loop beside
its NumPy baseline, leaves a clean pool and removes it (times are not
checked here: they are the benchmark's business)."""

import os
import subprocess
import sys

from conftest import PYDIR, child_env, on_hugetlbfs, pool_path


def test_bench_runs_and_cleans_up():
    path = pool_path("bench")
    cmd = [sys.executable, os.path.join(PYDIR, "bench.py"), "--iters", "5",
           "--repeat", "1", "--size", "32M", "--path", path, "--no-torch"]
    if not on_hugetlbfs():
        cmd.append("--allow-shm")
    r = subprocess.run(cmd, env=child_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for row in ("l1arena alloc+free", "numpy.empty", "l1arena alloc+touch+free",
                "numpy.empty+touch", "zero_on_free=on", "zero_on_free=off"):
        assert row in out, out
    assert out.count("memcheck clean") == 2, out
    assert not os.path.exists(path)
