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
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYDIR = os.path.join(ROOT, "tools", "python")
if importlib.util.find_spec("l1arena") is None:
    sys.path.insert(0, PYDIR)


def _sanitizer(lib):
    """('asan'|'tsan', runtime path) when lib links a sanitizer runtime."""
    try:
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        out = subprocess.run(["ldd", lib], capture_output=True, text=True,
                             timeout=60, env=env).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for kind in ("asan", "tsan"):
        m = re.search(r"lib%s\.so[.\d]* => (\S+)" % kind, out)
        if m:
            return kind, m.group(1)
    return None


# `make check SANITIZE=address|thread` hands us a sanitized libl1arena.so
# (L1ARENA_LIB under build/asan or build/tsan).  Its runtime must come first
# in the process, so pytest is started again with it preloaded; the tests
# then exercise the sanitized library.  CPython's own allocations at exit
# are not leaks of ours: leak detection is off.
SANITIZER = None
_REEXEC = None
_lib = os.environ.get("L1ARENA_LIB")
if _lib and os.path.exists(_lib):
    _san = _sanitizer(_lib)
    if _san:
        SANITIZER = _san[0]
        if _san[1] not in os.environ.get("LD_PRELOAD", ""):
            if os.environ.get("L1_PYTEST_REEXEC"):
                raise RuntimeError("cannot preload %s for %s" % (_san[1], _lib))
            _REEXEC = dict(os.environ, L1_PYTEST_REEXEC="1")
            _REEXEC["LD_PRELOAD"] = (_san[1] + " " + os.environ.get(
                "LD_PRELOAD", "")).strip()
            if SANITIZER == "asan":
                _REEXEC["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "")
                                           + ":detect_leaks=0").lstrip(":")


def pytest_configure(config):
    if _REEXEC is None:
        return
    # give the real stdout/stderr back (pytest captures them while it loads
    # conftests), then run this same pytest command again, preloaded
    capman = config.pluginmanager.getplugin("capturemanager")
    if capman is not None:
        capman.suspend_global_capture(in_=True)
    sys.stdout.flush()
    sys.stderr.flush()
    print("tests/python: %s build, rerunning pytest with LD_PRELOAD=%s"
          % (SANITIZER, _REEXEC["LD_PRELOAD"]), flush=True)
    os.execve(sys.executable, sys.orig_argv, _REEXEC)


if _REEXEC is not None:
    # do not load the sanitized library before the re-exec
    collect_ignore_glob = ["test_*.py"]

# Tests that fork() a process with threads: ThreadSanitizer does not support
# new threads after such a fork.
forks = pytest.mark.skipif(
    SANITIZER == "tsan", reason="ThreadSanitizer build: no threads after a "
    "multi-threaded fork(), so fork()ing tests run in the plain and ASan builds")

if _REEXEC is None:
    import l1arena  # noqa: E402

# L1_TEST_NO_TORCH=1 runs the suite as on a machine without torch, where
# it is installed: `import torch` fails in this process (children may
# still import it; nothing they check depends on it).
if os.environ.get("L1_TEST_NO_TORCH") == "1":
    sys.modules["torch"] = None
HAVE_TORCH = (sys.modules.get("torch", 0) is not None
              and importlib.util.find_spec("torch") is not None)
needs_torch = pytest.mark.skipif(
    not HAVE_TORCH, reason="torch is not importable (python3-torch not installed, "
    "or L1_TEST_NO_TORCH=1): torch views, torch.Size and the verbatim example "
    "are not tested here")

MiB = 1 << 20
_seq = itertools.count()


def on_hugetlbfs():
    return os.environ.get("L1_TEST_HUGETLBFS") == "1"


def pool_dir():
    d = os.environ.get("L1_TEST_DIR")
    if d:
        return d
    d = os.environ.get("L1_TEST_SHM_DIR") or "/dev/shm/l1test-%d" % os.getuid()
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
