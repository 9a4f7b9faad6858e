"""`pip install ./tools/python` gives a working package (no compiler needed),
and the library is found through $L1ARENA_LIB, next to the package in the
tree (../../build/lib), or fails with a message saying how to fix it."""

import os
import shutil
import subprocess
import sys

import pytest

import l1arena
from conftest import PYDIR, ROOT, child_env

PROBE = ("import l1arena, numpy as np, os, sys\n"
         "print(l1arena.__file__)\n"
         "print(l1arena.LIB_PATH)\n")


def _env(**kw):
    env = child_env()
    env.pop("PYTHONPATH", None)
    env.pop("L1ARENA_LIB", None)
    env.update(kw)
    return env


def test_pip_install(tmp_path):
    if subprocess.run([sys.executable, "-m", "pip", "--version"],
                      capture_output=True).returncode != 0:
        pytest.skip("pip is not available for %s (Debian: python3-pip)" % sys.executable)
    src = tmp_path / "src"
    shutil.copytree(PYDIR, src, ignore=shutil.ignore_patterns(
        "__pycache__", "build", "*.egg-info"))
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                        "--no-build-isolation", "--no-index", "--quiet",
                        "--target", str(target), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "l1arena" / "__init__.py").exists()
    # installed copy + $L1ARENA_LIB
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=str(tmp_path),
                       env=_env(PYTHONPATH=str(target), L1ARENA_LIB=l1arena.LIB_PATH),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    f, lib = r.stdout.split("\n")[:2]
    assert f.startswith(str(target)) and lib == l1arena.LIB_PATH
    # installed copy, no $L1ARENA_LIB, not on the loader's path: a clear error
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=str(tmp_path),
                       env=_env(PYTHONPATH=str(target)),
                       capture_output=True, text=True)
    if r.returncode == 0:
        assert "libl1arena" in r.stdout      # installed system-wide
    else:
        assert "L1ARENA_LIB" in r.stderr and "make lib" in r.stderr
    # installed copy with the library bundled next to it
    shutil.copy(l1arena.LIB_PATH, target / "l1arena" / "libl1arena.so")
    r = subprocess.run([sys.executable, "-c", PROBE], cwd=str(tmp_path),
                       env=_env(PYTHONPATH=str(target)),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[1] == str(target / "l1arena" / "libl1arena.so")


def test_found_in_the_tree_without_env():
    lib = os.path.join(ROOT, "build", "lib", "libl1arena.so")
    if not os.path.exists(lib):
        pytest.skip("no %s" % lib)
    r = subprocess.run([sys.executable, "-c", PROBE], cwd="/",
                       env=_env(PYTHONPATH=PYDIR), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[1] == lib


def test_bad_l1arena_lib_is_an_error_not_a_fallback(tmp_path):
    r = subprocess.run([sys.executable, "-c", PROBE], cwd="/",
                       env=_env(PYTHONPATH=PYDIR,
                                L1ARENA_LIB=str(tmp_path / "nope.so")),
                       capture_output=True, text=True)
    assert r.returncode != 0 and "L1ARENA_LIB" in r.stderr
