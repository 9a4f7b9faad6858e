"""Fixtures for the Python binding's tests.

Pools go under $L1_TEST_DIR (the hugetlbfs tests/run.sh mounts), else a
private directory under /dev/shm with the shm fallback allowed, exactly like
tests/common/testutil.c.  Every pool a test makes is removed afterwards.
Run from the tree: PYTHONPATH=tools/python (run.sh sets it, and
L1ARENA_LIB); without them this file puts tools/python on sys.path.
"""

import gc
import glob
import importlib.util
import itertools
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYDIR = os.path.join(ROOT, "tools", "python")
if importlib.util.find_spec("l1arena") is None:
    sys.path.insert(0, PYDIR)

import l1arena  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(
    not HAVE_TORCH, reason="torch is not importable (python3-torch not installed): "
    "torch views and the torch.Size form of the example are not tested here")

MiB = 1 << 20
_seq = itertools.count()


def on_hugetlbfs():
    return os.environ.get("L1_TEST_HUGETLBFS") == "1"


def pool_dir():
    d = os.environ.get("L1_TEST_DIR")
    if d:
        return d
    d = "/dev/shm/l1test-%d" % os.getuid()
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


def pool_path(name):
    """A fresh pool path (unique per process and call)."""
    p = os.path.join(pool_dir(), "py-%s-%d-%d" % (name, os.getpid(), next(_seq)))
    if os.path.exists(p):
        os.unlink(p)
    return p


def remove_pool(path):
    try:
        l1arena.destroy(path, force=True)
    except l1arena.L1Exception:
        pass
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def config(path, size=64 * MiB, **kw):
    """A test-sized config: eager, pinning off, shm fallback unless on
    hugetlbfs (like l1t_config)."""
    kw.setdefault("use_lazy", False)
    kw.setdefault("pin", "off")
    kw.setdefault("allow_shm", not on_hugetlbfs())
    if size < 64 * MiB:
        kw.setdefault("grow_step_bytes", size)
    return l1arena.L1MemoryManagerConfig(size_in_bytes=size, path=path, **kw)


def child_env(**extra):
    """Environment for child processes (library, import path, test dir)."""
    env = dict(os.environ)
    pp = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = PYDIR + (os.pathsep + pp if pp else "")
    env["L1ARENA_LIB"] = l1arena.LIB_PATH if os.path.isabs(l1arena.LIB_PATH) \
        else env.get("L1ARENA_LIB", "")
    if not env["L1ARENA_LIB"]:
        del env["L1ARENA_LIB"]
    env.update(extra)
    return env


class PoolFactory:
    def __init__(self):
        self.paths = []
        self.managers = []

    def path(self, name="pool"):
        p = pool_path(name)
        self.paths.append(p)
        return p

    def __call__(self, size=64 * MiB, name="pool", **kw):
        p = self.path(name)
        m = l1arena.L1MemoryManager(config(p, size, **kw))
        self.managers.append(m)
        return m

    def cleanup(self):
        gc.collect()
        for m in self.managers:
            try:
                m.close(wait=1.0)
            except l1arena.L1Exception:
                pass
        for p in self.paths:
            remove_pool(p)


@pytest.fixture
def pools():
    """make_pool(size, **config) -> L1MemoryManager; all closed and removed
    at the end of the test."""
    f = PoolFactory()
    yield f
    f.cleanup()


@pytest.fixture
def pool(pools):
    return pools()


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_pools():
    yield
    for p in glob.glob(os.path.join(pool_dir(), "py-*-%d-*" % os.getpid())):
        remove_pool(p)
