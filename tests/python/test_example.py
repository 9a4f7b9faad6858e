"""The example of issue 8 (LMCache's usage example) runs with only its
import lines changed, and runs twice in a row over the same path (the second
run attaches to the pool the first one left), on huge pages and on the
/dev/shm fallback.

The example is kept below exactly as the issue gives it.  With torch it runs
verbatim; NumPy-only machines run the same text with torch.Size([...]) as a
tuple and torch.float16 as numpy.float16 (the only edits, made by the test
itself).  It runs in a fresh interpreter whose environment says where the
pool goes (L1ARENA_PATH, read by the C library) and sizes what the example
leaves to defaults to a test machine: L1ARENA_INIT_SIZE / _GROW_STEP /
_MAX_OBJECTS keep the 64 GiB lazy pool's committed part and metadata small,
L1ARENA_ALLOW_SHM allows /dev/shm where run.sh has no hugetlbfs mount.
"""

import ast
import os
import subprocess
import sys

import pytest

from conftest import (HAVE_TORCH, child_env, needs_torch, on_hugetlbfs,
                      pool_path, remove_pool)

EXAMPLE = '''\
config = L1MemoryManagerConfig(size_in_bytes=64 * (1 << 30), use_lazy=True)
manager = L1MemoryManager(config)
layout = MemoryLayoutDesc(shapes=[torch.Size([2, 32, 128])], dtypes=[torch.float16])
error, mem_objs = manager.allocate(layout, count=10)
if error == L1Error.SUCCESS: ...
used, total = manager.get_memory_usage()
manager.free(mem_objs)
manager.close()
'''

IMPORTS = ("from l1arena import L1MemoryManagerConfig, L1MemoryManager, "
           "MemoryLayoutDesc, L1Error\n")

REPORT = '''
print(repr((error.name, len(mem_objs), used, total,
            sorted({tuple(o.get_shape()) for o in mem_objs}),
            mem_objs[0].layout.format(), manager.closed, manager.pool_id)))
'''


def run_once(path, imports, body, shm):
    env = child_env(L1ARENA_PATH=path, L1ARENA_INIT_SIZE="64M",
                    L1ARENA_GROW_STEP="64M", L1ARENA_MAX_OBJECTS="65536")
    if shm:
        env["L1ARENA_ALLOW_SHM"] = "1"
    r = subprocess.run([sys.executable, "-c", imports + body + REPORT],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.path.exists(path)             # the pool went where we said
    err, n, used, total, shapes, dtype, closed, pool_id = ast.literal_eval(
        r.stdout.strip().splitlines()[-1])
    assert err == "SUCCESS" and n == 10
    assert used == 10 * 2 * 32 * 128 * 2          # 10 objects of 16 KiB
    assert total == 64 << 30
    assert shapes == [(2, 32, 128)]
    assert closed
    return dtype, pool_id


def run_example(imports, body):
    path = pool_path("example")
    try:
        return run_once(path, imports, body, not on_hugetlbfs())[0]
    finally:
        remove_pool(path)


@needs_torch
def test_issue_example_verbatim_with_torch():
    dtype = run_example("import torch\n" + IMPORTS, EXAMPLE)
    assert dtype == "[2,32,128]:fp16"


def test_issue_example_with_tuples_and_numpy_dtypes():
    body = (EXAMPLE.replace("torch.Size([2, 32, 128])", "(2, 32, 128)")
            .replace("torch.float16", "numpy.float16"))
    assert "torch" not in body
    dtype = run_example("import numpy\n" + IMPORTS, body)
    assert dtype == "[2,32,128]:fp16"


@pytest.mark.parametrize("backing", ["hugetlbfs", "shm"])
def test_issue_example_twice_in_a_row(backing):
    """Run, run again: the second run attaches to the pool the first left
    (same pool id), allocates and frees again; the pool stays until its
    owner removes it (here, the test)."""
    if backing == "hugetlbfs" and not on_hugetlbfs():
        pytest.skip("no hugetlbfs mount in this run (tests/run.sh mounts one as "
                    "root with huge pages to spare)")
    if backing == "shm":
        d = os.environ.get("L1_TEST_SHM_DIR") or "/dev/shm/l1test-%d" % os.getuid()
        os.makedirs(d, mode=0o700, exist_ok=True)
        path = os.path.join(d, "py-example2-%d" % os.getpid())
    else:
        path = pool_path("example2")
    if HAVE_TORCH:
        imports, body = "import torch\n" + IMPORTS, EXAMPLE
    else:
        imports = "import numpy\n" + IMPORTS
        body = (EXAMPLE.replace("torch.Size([2, 32, 128])", "(2, 32, 128)")
                .replace("torch.float16", "numpy.float16"))
    try:
        _, first = run_once(path, imports, body, backing == "shm")
        _, second = run_once(path, imports, body, backing == "shm")
        assert first == second
    finally:
        remove_pool(path)
