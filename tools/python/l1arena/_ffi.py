"""Low-level ctypes layer over libl1arena: finding and loading the library,
the C structs of arena/l1arena.h mirrored field for field, the constants, and
the prototypes of every public function.

Nothing here is meant for end users; l1arena/__init__.py re-exports the
parts that are (``LIB_PATH``, ``lib``, the struct classes for tools that want
to call the C API directly).

The struct definitions must stay identical to the header: same field names,
order and C types.  Two checks keep them honest: ``_self_check()`` below runs
at import and compares ``ctypes.sizeof`` with the sizes the header gives on an
LP64 platform, and tests/python/test_abi.py compiles a C program that prints
``sizeof``/``offsetof`` of every field (generated from ``_fields_``) and
compares them with ctypes.
"""

import ctypes
import ctypes.util
import os
import sys

__all__ = [
    "lib", "LIB_PATH", "L1Tensor", "L1Layout", "L1Config", "L1OpenOpts",
    "L1Obj", "L1ObjInfo", "L1Usage", "L1Range", "L1VmSpace",
    "L1ClientInfo", "L1GcResult", "L1ClientOwner", "L1Stats", "L1Health", "STRUCTS",
]

# ---- constants (arena/l1arena.h) -----------------------------------------

L1_VERSION_MAJOR = 1
L1_VERSION_MINOR = 0
L1_MAX_TENSORS = 4
L1_MAX_DIMS = 8
L1_KEY_MAX = 127
L1_PATH_MAX = 256
L1_REASON_MAX = 128
L1_DEFAULT_PATH = "/dev/hugepages/l1arena"
L1_DEFAULT_ALIGN = 4096
L1_DEFAULT_GROW_STEP = 1 << 30
L1_DEFAULT_LAZY_INIT = 20 << 30
L1_HUGEPAGE_2M = 2 << 20
L1_HUGEPAGE_1G = 1 << 30

# enum l1_dtype
L1_DTYPE_INVALID = 0
L1_DTYPE_FP16 = 1
L1_DTYPE_BF16 = 2
L1_DTYPE_FP32 = 3
L1_DTYPE_FP64 = 4
L1_DTYPE_INT8 = 5
L1_DTYPE_UINT8 = 6
L1_DTYPE_INT16 = 7
L1_DTYPE_INT32 = 8
L1_DTYPE_INT64 = 9
L1_DTYPE_FP8_E4M3 = 10
L1_DTYPE_FP8_E5M2 = 11
L1_DTYPE_BOOL = 12
L1_DTYPE_UINT16 = 13
L1_DTYPE_UINT32 = 14
L1_DTYPE_UINT64 = 15
L1_DTYPE_COUNT = 16

# enum l1_pin_mode
L1_PIN_OFF = 0
L1_PIN_AUTO = 1
L1_PIN_DEFER = 2

# enum l1_zero_method
L1_ZERO_AUTO = 0
L1_ZERO_URING = 1
L1_ZERO_MEMSET = 2

# enum l1_obj_state
L1_STATE_FREE = 0
L1_STATE_ALLOCATED = 1
L1_STATE_PUBLISHED = 2
L1_STATE_DIRTY = 3
L1_STATE_DOOMED = 4

# enum l1_pin_status
L1_PIN_NONE = 0
L1_PIN_PINNED = 1
L1_PIN_UNPINNED = 2
L1_PIN_DEFERRED = 3

# bound on a wait for the pool lock (ms; $L1ARENA_LOCK_TIMEOUT_MS overrides)
L1_LOCK_WAIT_MS = 5000

# Every constant above, by its C name, for the ABI test.
CONSTANTS = {k: v for k, v in dict(globals()).items()
             if k.startswith("L1_") and isinstance(v, int)}

# ---- structs ---------------------------------------------------------------

u32 = ctypes.c_uint32
u64 = ctypes.c_uint64
i32 = ctypes.c_int32


class L1Tensor(ctypes.Structure):
    _c_name_ = "l1_tensor"
    _fields_ = [
        ("dtype", u32),
        ("ndim", u32),
        ("shape", u64 * L1_MAX_DIMS),
    ]


class L1Layout(ctypes.Structure):
    _c_name_ = "l1_layout"
    _fields_ = [
        ("ntensors", u32),
        ("reserved", u32),
        ("t", L1Tensor * L1_MAX_TENSORS),
    ]


class L1Config(ctypes.Structure):
    _c_name_ = "l1_config"
    _fields_ = [
        ("version", u32),
        ("reserved0", u32),
        ("size_bytes", u64),
        ("init_size_bytes", u64),
        ("grow_step_bytes", u64),
        ("align_bytes", u64),
        ("hugepage_size", u64),
        ("max_objects", u64),
        ("path", ctypes.c_char_p),
        ("lazy", i32),
        ("zero_on_free", i32),
        ("zero_method", i32),
        ("pin", i32),
        ("pin_mapped", i32),
        ("allow_shm", i32),
        ("force", i32),
        ("mode", u32),
    ]


class L1OpenOpts(ctypes.Structure):
    _c_name_ = "l1_open_opts"
    _fields_ = [
        ("pin", i32),
        ("pin_mapped", i32),
        ("zero_method", i32),
        ("readonly", i32),
        ("no_client", i32),
        ("reserved", i32 * 3),
    ]


class L1Obj(ctypes.Structure):
    _c_name_ = "l1_obj"
    _fields_ = [
        ("id", u64),
        ("offset", u64),
        ("size", u64),
        ("ptr", ctypes.c_void_p),
        ("pool_id", u64),
        ("layout_id", u32),
        ("reserved", u32),
        ("data_size", u64),
    ]


# struct l1_obj viewed as 64-bit words (the allocation fast path reads the
# array filled by l1_alloc as uint64 words): id, offset, size, ptr, pool_id,
# layout_id | reserved << 32, data_size.
OBJ_WORDS = 7


class L1ObjInfo(ctypes.Structure):
    _c_name_ = "l1_obj_info"
    _fields_ = [
        ("obj", L1Obj),
        ("state", u32),
        ("holds", u32),
        ("owner_pid", i32),
        ("uid", u32),
        ("gid", u32),
        ("mode", u32),
        ("owner_start", u64),
        ("ctime_ns", u64),
        ("publish_ns", u64),
        ("key", ctypes.c_char * (L1_KEY_MAX + 1)),
    ]


class L1Usage(ctypes.Structure):
    _c_name_ = "l1_usage"
    _fields_ = [
        ("used_bytes", u64),
        ("total_bytes", u64),
        ("committed_bytes", u64),
        ("dirty_bytes", u64),
        ("free_bytes", u64),
        ("largest_free_bytes", u64),
        ("objects", u64 * 5),
        ("max_objects", u64),
        ("holds", u64),
        ("clients", u64),
        ("allocs", u64),
        ("frees", u64),
        ("ooms", u64),
        ("repairs", u64),
        ("zeroed_bytes", u64),
        ("zero_busy_ns", u64),
        ("hugepage_size", u64),
        ("grow_step_bytes", u64),
        ("align_bytes", u64),
        ("metadata_bytes", u64),
        ("lazy", i32),
        ("zero_on_free", i32),
        ("grow_failed", i32),
        ("reserved", i32),
        ("backing", ctypes.c_char * 16),
        ("zero_method", ctypes.c_char * 48),
        ("grow_reason", ctypes.c_char * L1_REASON_MAX),
    ]


class L1Range(ctypes.Structure):
    _c_name_ = "l1_range"
    _fields_ = [
        ("offset", u64),
        ("len", u64),
    ]


class L1VmSpace(ctypes.Structure):
    _c_name_ = "l1_vm_space"
    _fields_ = [
        ("base", ctypes.c_void_p),
        ("size", u64),
        ("fd", i32),
        ("pinned", u32),
        ("page_size", u64),
        ("data_offset", u64),
        ("data_size", u64),
        ("committed", u64),
        ("pool_id", u64),
        ("path", ctypes.c_char * L1_PATH_MAX),
    ]


class L1ClientInfo(ctypes.Structure):
    _c_name_ = "l1_client_info"
    _fields_ = [
        ("pid", i32),
        ("pin_status", u32),
        ("start_time", u64),
        ("attach_ns", u64),
        ("pinned_bytes", u64),
        ("holds", u32),
        ("alive", u32),
        ("pin_reason", ctypes.c_char * L1_REASON_MAX),
        ("zero_method", ctypes.c_char * 48),
    ]


class L1GcResult(ctypes.Structure):
    _c_name_ = "l1_gc_result"
    _fields_ = [
        ("objects_reclaimed", u64),
        ("dirty_requeued", u64),
        ("holds_dropped", u64),
        ("clients_dropped", u64),
        ("bytes_reclaimed", u64),
    ]


class L1ClientOwner(ctypes.Structure):
    _c_name_ = "l1_client_owner"
    _fields_ = [
        ("pid", i32),
        ("uid", u32),
        ("start_time", u64),
        ("comm", ctypes.c_char * 16),
    ]


class L1Stats(ctypes.Structure):
    _c_name_ = "l1_stats"
    _fields_ = [
        ("zero_waits", u64),
        ("zero_wait_ns", u64),
        ("gc_objects_reclaimed", u64),
        ("gc_holds_dropped", u64),
        ("gc_clients_dropped", u64),
        ("gc_dirty_requeued", u64),
        ("doomed_bytes", u64),
        ("doomed_objects", u64),
        ("reserved", u64 * 8),
    ]


class L1Health(ctypes.Structure):
    _c_name_ = "l1_health"
    _fields_ = [
        ("lock_pid", i32),
        ("lock_tid", i32),
        ("lock_held_ns", u64),
        ("lock_state", ctypes.c_char * 32),
        ("lock_wait_ms", u64),
        ("lock_timeouts", u64),
        ("grow_failures", u64),
        ("grow_returned_bytes", u64),
        ("lock_text", ctypes.c_char * L1_REASON_MAX),
        ("grow_text", ctypes.c_char * L1_REASON_MAX),
    ]


STRUCTS = [L1Tensor, L1Layout, L1Config, L1OpenOpts, L1Obj, L1ObjInfo,
           L1Usage, L1Range, L1VmSpace, L1ClientInfo, L1GcResult,
           L1ClientOwner, L1Stats, L1Health]

# sizeof(struct ...) from the header on an LP64 platform (x86_64, aarch64).
EXPECTED_SIZES = {
    "l1_tensor": 72, "l1_layout": 296, "l1_config": 96, "l1_open_opts": 32,
    "l1_obj": 56, "l1_obj_info": 232, "l1_usage": 400, "l1_range": 16,
    "l1_vm_space": 320, "l1_client_info": 216, "l1_gc_result": 40,
    "l1_client_owner": 32, "l1_stats": 128,
    "l1_health": 336,
}


def _self_check():
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        raise ImportError("l1arena: only LP64 platforms are supported")
    bad = []
    for s in STRUCTS:
        if ctypes.sizeof(s) != EXPECTED_SIZES[s._c_name_]:
            bad.append("struct %s: ctypes %d bytes, header %d"
                       % (s._c_name_, ctypes.sizeof(s), EXPECTED_SIZES[s._c_name_]))
    if ctypes.sizeof(L1Obj) != OBJ_WORDS * 8:
        bad.append("struct l1_obj is not %d words" % OBJ_WORDS)
    if bad:
        raise ImportError("l1arena: ctypes structs do not match l1arena.h: "
                          + "; ".join(bad))


_self_check()

# ---- finding the library ---------------------------------------------------


def _candidates():
    """Where to look, in order: $L1ARENA_LIB (alone: an explicit choice), a
    copy next to this file (pip install of a built tree bundles one), the
    tree's build/lib (PYTHONPATH=tools/python), the libdir `make install`
    wrote into _installed.py."""
    env = os.environ.get("L1ARENA_LIB")
    if env:
        # An explicit choice: no silent fallback to another build.
        return [env], True
    here = os.path.dirname(os.path.abspath(__file__))
    c = [
        os.path.join(here, "libl1arena.so"),                  # bundled copy
        # in the tree: tools/python/l1arena -> ../../build/lib relative to
        # the package root tools/python
        os.path.normpath(os.path.join(here, "..", "..", "..", "build", "lib",
                                      "libl1arena.so")),
    ]
    try:
        from . import _installed                              # make install
        c += [os.path.join(_installed.LIBDIR, n)
              for n in ("libl1arena.so.1", "libl1arena.so")]
    except ImportError:
        pass
    return [p for p in c if os.path.exists(p)], False


def _load():
    tried = []
    cands, explicit = _candidates()
    for p in cands:
        try:
            return ctypes.CDLL(p), p
        except OSError as e:
            tried.append("%s (%s)" % (p, e))
            if explicit:
                raise ImportError("l1arena: cannot load $L1ARENA_LIB=%s: %s"
                                  % (p, e)) from None
    # The system loader: LD_LIBRARY_PATH, ld.so.cache (ldconfig).
    for name in ("libl1arena.so.1", "libl1arena.so",
                 ctypes.util.find_library("l1arena")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name), name
        except OSError as e:
            tried.append("%s (%s)" % (name, e))
    raise ImportError(
        "l1arena: libl1arena.so not found; install it with `make install` "
        "(then ldconfig finds it), build it with `make lib`, or set "
        "L1ARENA_LIB to its path. Tried: " + "; ".join(tried or ["nothing"]))


lib, LIB_PATH = _load()

# ---- prototypes --------------------------------------------------------------

P = ctypes.c_void_p          # handles and buffers: passed as plain integers
c_char_p = ctypes.c_char_p
c_int = ctypes.c_int
size_t = ctypes.c_size_t

_PROTOS = {
    # name: (restype, argtypes)
    "l1_strerror": (c_char_p, [c_int]),
    "l1_last_error": (c_char_p, []),
    "l1_dtype_size": (u32, [u32]),
    "l1_dtype_name": (c_char_p, [u32]),
    "l1_dtype_parse": (u32, [c_char_p]),
    "l1_layout_bytes": (c_int, [P, P]),
    "l1_layout_format": (c_int, [P, c_char_p, size_t]),
    "l1_layout_parse": (c_int, [c_char_p, P]),
    "l1_layout_tensor_offset": (c_int, [P, u32, P]),
    "l1_config_init": (None, [P]),
    "l1_config_validate": (c_int, [P]),
    "l1_open_opts_init": (None, [P]),
    "l1_arena_create": (c_int, [P, P]),
    "l1_arena_open": (c_int, [c_char_p, P, P]),
    "l1_arena_close": (None, [P]),
    "l1_arena_destroy": (c_int, [c_char_p, c_int]),
    "l1_arena_path": (c_char_p, [P]),
    "l1_state_name": (c_char_p, [u32]),
    "l1_alloc": (c_int, [P, P, u32, P]),
    "l1_alloc_bytes": (c_int, [P, u64, u32, P]),
    "l1_free": (c_int, [P, P, u32]),
    "l1_free_ids": (c_int, [P, P, u32]),
    "l1_publish": (c_int, [P, u64, c_char_p]),
    "l1_get": (c_int, [P, u64, P]),
    "l1_lookup": (c_int, [P, c_char_p, P]),
    "l1_hold": (c_int, [P, u64, P]),
    "l1_hold_key": (c_int, [P, c_char_p, P]),
    "l1_release": (c_int, [P, u64]),
    "l1_obj_info": (c_int, [P, u64, P]),
    "l1_obj_list": (c_int, [P, P, P, u32]),
    "l1_obj_chmod": (c_int, [P, u64, u32, u32, u32]),
    "l1_obj_set_data_size": (c_int, [P, u64, u64]),
    "l1_arena_layout": (c_int, [P, u32, P]),
    "l1_get_memory_usage": (None, [P, P, P]),
    "l1_arena_usage": (c_int, [P, P]),
    "l1_arena_health": (c_int, [P, P]),
    "l1_arena_zero_split": (c_int, [P, P]),
    "l1_get_vm_space": (c_int, [P, P]),
    "l1_arena_pinned_ranges": (c_int, [P, P, u32]),
    "l1_arena_clients": (c_int, [P, P, u32]),
    "l1_arena_client_owners": (c_int, [P, P, u32]),
    "l1_arena_stats": (c_int, [P, P]),
    "l1_arena_gc": (c_int, [P, P]),
    "l1_arena_flush": (c_int, [P, ctypes.c_int64]),
    "l1_arena_memcheck": (c_int, [P, c_int, c_char_p, size_t]),
    "l1_open_path": (c_int, [P, c_char_p, P]),
    "l1_key_view_name": (c_int, [c_char_p, c_char_p, size_t]),
    "l1_setup_hugepages": (c_int, [u64, u64, c_char_p, c_char_p, size_t]),
    "l1_parse_size": (c_int, [c_char_p, P]),
}

MISSING = []


class _Missing:
    """Stands in for a function the loaded library does not export, so that
    the rest of the binding works and only the calls that need it fail."""

    def __init__(self, name):
        self.name = name

    def __call__(self, *a):
        from .errors import L1Exception
        raise L1Exception(-38, "%s: not exported by %s (library too old or "
                          "incomplete)" % (self.name, LIB_PATH))


def _bind():
    ns = {}
    for name, (res, args) in _PROTOS.items():
        try:
            f = getattr(lib, name)
        except AttributeError:
            MISSING.append(name)
            ns[name] = _Missing(name)
            continue
        f.restype = res
        f.argtypes = args
        ns[name] = f
    return ns


_F = _bind()
globals().update(_F)


def last_error():
    """The calling thread's sentence about its most recent failed call."""
    try:
        s = _F["l1_last_error"]()
    except Exception:
        return ""
    return s.decode("utf-8", "replace") if s else ""


def strerror(code):
    try:
        s = _F["l1_strerror"](code)
    except Exception:
        return os.strerror(-code) if code < 0 else "error %d" % code
    return s.decode("utf-8", "replace") if s else ""


def cstr(b):
    """bytes from a char array field -> str"""
    if isinstance(b, bytes):
        return b.split(b"\0", 1)[0].decode("utf-8", "replace")
    return b


def struct_dict(s):
    """A ctypes struct as a dict (arrays as lists, char arrays as str)."""
    out = {}
    for name, typ in s._fields_:
        v = getattr(s, name)
        if isinstance(v, bytes):
            v = cstr(v)
        elif isinstance(v, ctypes.Structure):
            v = struct_dict(v)
        elif isinstance(v, ctypes.Array):
            v = list(v)
        out[name] = v
    return out


del sys
