"""The ctypes mirror of arena/l1arena.h matches what the C compiler says:
sizeof/alignof of every struct, offsetof/sizeof/signedness of every field
(the C program is generated from the ctypes _fields_, so no field is
forgotten), the value of every constant, and every function the header
declares has a prototype in the binding."""

import ctypes
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT
from l1arena import _ffi

HEADER = os.path.join(ROOT, "arena", "l1arena.h")
INT_TYPES = {ctypes.c_uint32: 0, ctypes.c_uint64: 0, ctypes.c_int32: 1}


def c_program():
    out = ['#include <stdio.h>', '#include <stddef.h>', '#include "l1arena.h"',
           '#define F(s, f) printf("field %s %s %zu %zu\\n", #s, #f, '
           'offsetof(struct s, f), sizeof(((struct s *)0)->f));',
           '#define SG(s, f) printf("signed %s %s %d\\n", #s, #f, '
           '(int)((__typeof__(((struct s *)0)->f))-1 < 0));',
           '#define S(s) printf("struct %s %zu %zu\\n", #s, sizeof(struct s), '
           '_Alignof(struct s));',
           '#define C(n) printf("const %s %lld\\n", #n, (long long)(n));',
           'int main(void) {']
    for s in _ffi.STRUCTS:
        out.append("S(%s)" % s._c_name_)
        for name, typ in s._fields_:
            out.append("F(%s, %s)" % (s._c_name_, name))
            if typ in INT_TYPES:
                out.append("SG(%s, %s)" % (s._c_name_, name))
    for name in sorted(_ffi.CONSTANTS):
        out.append("C(%s)" % name)
    out.append('printf("str L1_DEFAULT_PATH %s\\n", L1_DEFAULT_PATH);')
    out.append("return 0; }")
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def c_facts(tmp_path_factory):
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler: the ABI cannot be checked against the header")
    d = tmp_path_factory.mktemp("abi")
    src = d / "abi.c"
    src.write_text(c_program())
    exe = d / "abi"
    subprocess.run([cc, "-std=gnu11", "-Wall", "-Werror", "-I",
                    os.path.join(ROOT, "arena"), "-o", str(exe), str(src)],
                   check=True)
    lines = subprocess.run([str(exe)], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    facts = {"field": {}, "struct": {}, "const": {}, "signed": {}, "str": {}}
    for ln in lines:
        kind, rest = ln.split(" ", 1)
        if kind == "field":
            s, f, off, size = rest.split()
            facts["field"][(s, f)] = (int(off), int(size))
        elif kind == "signed":
            s, f, v = rest.split()
            facts["signed"][(s, f)] = int(v)
        elif kind == "struct":
            s, size, align = rest.split()
            facts["struct"][s] = (int(size), int(align))
        elif kind == "const":
            n, v = rest.split()
            facts["const"][n] = int(v)
        else:
            n, v = rest.split(" ", 1)
            facts["str"][n] = v
    return facts


@pytest.mark.parametrize("cls", _ffi.STRUCTS, ids=lambda c: c._c_name_)
def test_struct_matches_header(cls, c_facts):
    name = cls._c_name_
    assert c_facts["struct"][name] == (ctypes.sizeof(cls), ctypes.alignment(cls)), name
    assert _ffi.EXPECTED_SIZES[name] == ctypes.sizeof(cls)
    for fname, typ in cls._fields_:
        d = getattr(cls, fname)
        assert c_facts["field"][(name, fname)] == (d.offset, d.size), \
            "%s.%s: C (offset, size) %r, ctypes %r" % (
                name, fname, c_facts["field"][(name, fname)], (d.offset, d.size))
        if typ in INT_TYPES:
            assert c_facts["signed"][(name, fname)] == INT_TYPES[typ], \
                "%s.%s signedness" % (name, fname)


def test_constants_match_header(c_facts):
    for n, v in _ffi.CONSTANTS.items():
        assert c_facts["const"][n] == v, n
    assert c_facts["str"]["L1_DEFAULT_PATH"] == _ffi.L1_DEFAULT_PATH


def test_every_header_function_has_a_prototype():
    text = open(HEADER).read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    declared = set(re.findall(r"\b(l1_[a-z0-9_]+)\s*\(", text))
    missing = declared - set(_ffi._PROTOS)
    assert not missing, "functions of l1arena.h without a ctypes prototype: %s" % missing


def test_self_check_runs_at_import():
    # _self_check raises ImportError on a mismatch; calling it again must pass
    _ffi._self_check()
    assert ctypes.sizeof(_ffi.L1Obj) == 8 * _ffi.OBJ_WORDS
