"""L1MemoryManagerConfig, L1MemoryManager and MemoryObj: LMCache's L1 memory
manager interface over libl1arena.

Lifetimes (read this once)
--------------------------
* Every NumPy array (and torch tensor) the binding hands out is a zero-copy
  view into this process's mapping of the pool.  All of them, and anything
  sliced from them, keep one object alive: the manager's root array over the
  whole mapping.  The mapping is unmapped only when that root goes, so a
  view can never point at unmapped memory:
    - ``close()`` refuses, with ``L1ViewsAliveError``, while any such view is
      still reachable (it first drops the views cached inside MemoryObjs and
      runs the garbage collector); ``close(wait=SECONDS)`` waits up to that
      long for them to go first.  The manager stays open and usable after a
      refusal.
    - A manager that is simply dropped (no close()) detaches when its last
      view is gone, not before.
* Freeing objects: ``free()`` drops the views cached in those MemoryObjs and
  later accesses to their ``tensors``/``arrays`` raise.  Arrays you still
  hold stay mapped (no crash) but their bytes are no longer yours: the pool
  zeroes freed memory (they read as zeros) and then hands it to the next
  allocation.  A held object (``hold()``, ``open_path()``, or a hold from any
  process) keeps its bytes until the last hold is released, even if freed.
* Objects found by key or id (``lookup``, ``get``, ``hold``, ``open_path``)
  and objects after ``publish`` give read-only NumPy views (published objects
  are immutable).  torch cannot express read-only tensors: do not write
  through those.
* fork: a manager inherited by a child process is unusable there (every call
  raises); the child attaches again with ``L1MemoryManager.attach(path)``.
  Views inherited across fork stay valid in the child.

Pools (who makes them, who removes them)
----------------------------------------
* ``L1MemoryManager(config)`` creates the pool file at config.path, or, where
  a pool is there already, attaches to it if it is compatible: the same
  size_in_bytes and align_bytes (and a format this library reads).  Anything
  else is refused with an ``L1Exception`` (error EXISTS) whose sentence names
  the field that differs.  So the first of several workers with one config
  creates the pool and the others attach, and a program can run again over
  the pool its last run left.  ``config.force=True`` recreates it instead.
* ``close()`` detaches; it never removes the pool, not even the last one:
  published objects outlive the processes that wrote them, which is what a
  shared L1 tier is for.  The pool is removed by whoever owns the deployment,
  when no worker needs it any more: ``manager.destroy()`` (closes, then
  removes; refused while other processes are attached unless force=True),
  ``l1arena.destroy(path)``, or ``l1ctl destroy --path PATH``.  On huge pages
  a pool left behind holds its pages until then.
"""

import array
import atexit
import ctypes
import dataclasses
import enum
import gc as _gc
import os
import sys
import threading
import time
import weakref
from collections import namedtuple
from itertools import repeat
from operator import attrgetter
from typing import Optional, Union

import numpy as np

from . import _ffi
from .dtypes import torch_view, get_torch
from .errors import L1Error, L1Exception, L1ViewsAliveError
from .layout import MemoryLayoutDesc

__all__ = ["L1MemoryManagerConfig", "L1MemoryManager", "MemoryObj", "VmSpace",
           "L1MemoryDesc", "MemoryFormat", "MemoryObjMetadata",
           "create_memory_allocator"]

_ENOMEM = -12
_ENOSPC = -28
_EEXIST = -17
_ENOENT = -2
_ETIMEDOUT = -110
_EBADF = -9
_W = _ffi.OBJ_WORDS

_ndarray = np.ndarray
_weakref = weakref.ref
_u8 = np.dtype(np.uint8)

# ---- configuration -----------------------------------------------------------

_PIN = {"off": _ffi.L1_PIN_OFF, "auto": _ffi.L1_PIN_AUTO,
        "defer": _ffi.L1_PIN_DEFER}
# the spellings arena/pin.c accepts in $L1ARENA_PIN
_PIN.update(dict.fromkeys(("0", "no", "false", "disable", "disabled", "none"),
                          _ffi.L1_PIN_OFF))
_PIN.update(dict.fromkeys(("1", "yes", "true", "on"), _ffi.L1_PIN_AUTO))
_ZERO = {"auto": _ffi.L1_ZERO_AUTO, "io_uring": _ffi.L1_ZERO_URING,
         "uring": _ffi.L1_ZERO_URING, "memset": _ffi.L1_ZERO_MEMSET}


def _pin_mode(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return _ffi.L1_PIN_AUTO if v else _ffi.L1_PIN_OFF
    if isinstance(v, int):
        if v in _PIN.values():
            return v
    elif str(v).lower() in _PIN:
        return _PIN[str(v).lower()]
    raise ValueError("l1arena: pin must be 'off', 'auto' or 'defer', not %r" % (v,))


def _zero_method(v):
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        if v in _ZERO.values():
            return v
    elif str(v).lower() in _ZERO:
        return _ZERO[str(v).lower()]
    raise ValueError("l1arena: zero_method must be 'auto', 'io_uring' or "
                     "'memset', not %r" % (v,))


def parse_size(s):
    """Bytes from an int or a string such as "512M", "8G", "1.5G"."""
    if isinstance(s, int):
        return s
    out = ctypes.c_uint64()
    rc = _ffi.l1_parse_size(str(s).strip().encode(), ctypes.addressof(out))
    if rc < 0:
        raise L1Exception(rc, what="size %r" % (s,))
    return out.value


def _env_bool(v):
    return str(v).strip().lower() in ("1", "yes", "true", "on")


# Fields left at None take their value from the environment (deployment
# defaults, the way the C library reads $L1ARENA_PATH), else the C default.
_ENV = {
    "init_size_in_bytes": ("L1ARENA_INIT_SIZE", parse_size),
    "grow_step_bytes": ("L1ARENA_GROW_STEP", parse_size),
    "hugepage_size": ("L1ARENA_HUGEPAGE_SIZE", parse_size),
    "max_objects": ("L1ARENA_MAX_OBJECTS", int),
    "allow_shm": ("L1ARENA_ALLOW_SHM", _env_bool),
    "zero_method": ("L1ARENA_ZERO", str),
    "pin": ("L1ARENA_PIN", str),
}


@dataclasses.dataclass
class L1MemoryManagerConfig:
    """The configuration of an L1 memory pool.

    The first four fields are LMCache's.  The others are l1arena's (struct
    l1_config); ``None`` means: the environment variable named below if set,
    else the C default.

    size_in_bytes       pool data size (required)
    use_lazy            grow the committed part on demand instead of backing
                        everything at create
    init_size_in_bytes  lazy: committed at create [$L1ARENA_INIT_SIZE, else
                        20 GiB; capped to size_in_bytes like LMCache]
    align_bytes         block size, a power of two [4096]
    path                pool file [None: $L1ARENA_PATH, else
                        /dev/hugepages/l1arena]
    hugepage_size       2 MiB or 1 GiB [$L1ARENA_HUGEPAGE_SIZE, else 0 = the
                        mount's]
    max_objects         object table size [$L1ARENA_MAX_OBJECTS, else 0 =
                        size / 64 KiB, at least 1024]
    grow_step_bytes     lazy growth and pin chunk [$L1ARENA_GROW_STEP, else
                        0 = 1 GiB capped to size]
    zero_on_free        zero freed memory before reuse [True]
    zero_method         'auto' | 'io_uring' | 'memset' [$L1ARENA_ZERO, else
                        'auto'; the C library lets $L1ARENA_ZERO override]
    pin                 'auto' | 'off' | 'defer' (cudaHostRegister)
                        [$L1ARENA_PIN, else 'auto'; the C library lets
                        L1ARENA_PIN=off override]
    pin_mapped          also cudaHostRegisterMapped [False]
    allow_shm           fall back to /dev/shm without huge pages
                        [$L1ARENA_ALLOW_SHM, else False]
    force               create over an existing pool [False]
    mode                file mode of the pool [0o600]
    """

    size_in_bytes: int
    use_lazy: bool
    init_size_in_bytes: Optional[int] = None
    align_bytes: int = _ffi.L1_DEFAULT_ALIGN
    path: Optional[str] = None
    hugepage_size: Optional[int] = None
    max_objects: Optional[int] = None
    grow_step_bytes: Optional[int] = None
    zero_on_free: bool = True
    zero_method: Union[str, int, None] = None
    pin: Union[str, int, bool, None] = None
    pin_mapped: bool = False
    allow_shm: Optional[bool] = None
    force: bool = False
    mode: int = 0o600

    def __post_init__(self):
        self.size_in_bytes = parse_size(self.size_in_bytes)
        for name, (var, conv) in _ENV.items():
            if getattr(self, name) is None and os.environ.get(var):
                setattr(self, name, conv(os.environ[var]))
        if self.init_size_in_bytes is None:
            self.init_size_in_bytes = _ffi.L1_DEFAULT_LAZY_INIT
        self.init_size_in_bytes = min(parse_size(self.init_size_in_bytes),
                                      self.size_in_bytes)
        self.align_bytes = parse_size(self.align_bytes)
        for name in ("hugepage_size", "grow_step_bytes"):
            if getattr(self, name) is None:
                setattr(self, name, 0)
            setattr(self, name, parse_size(getattr(self, name)))
        if self.max_objects is None:
            self.max_objects = 0
        if self.zero_method is None:
            self.zero_method = "auto"
        if self.pin is None:
            self.pin = "auto"
        if self.allow_shm is None:
            self.allow_shm = False
        _pin_mode(self.pin)
        _zero_method(self.zero_method)
        if self.path is not None:
            self.path = os.fspath(self.path)

    def to_c(self):
        """A filled struct l1_config (keeps the path bytes alive on it)."""
        c = _ffi.L1Config()
        _ffi.l1_config_init(ctypes.addressof(c))
        c.size_bytes = self.size_in_bytes
        c.lazy = 1 if self.use_lazy else 0
        c.init_size_bytes = self.init_size_in_bytes if self.use_lazy else 0
        c.align_bytes = self.align_bytes
        c.hugepage_size = self.hugepage_size
        c.max_objects = self.max_objects
        c.grow_step_bytes = self.grow_step_bytes
        c.zero_on_free = 1 if self.zero_on_free else 0
        c.zero_method = _zero_method(self.zero_method)
        c.pin = _pin_mode(self.pin)
        c.pin_mapped = 1 if self.pin_mapped else 0
        c.allow_shm = 1 if self.allow_shm else 0
        c.force = 1 if self.force else 0
        c.mode = self.mode
        if self.path is not None:
            c._path_keep = os.fsencode(self.path)
            c.path = c._path_keep
        return c


# ---- the mapping keeper ------------------------------------------------------


class _Handle:
    """Owns the struct l1_arena *.  Referenced by the manager and by the
    ctypes array under every view, so l1_arena_close (which unmaps) runs
    only once both the manager and all views are gone, or on an explicit
    close() that has checked no view is left."""

    __slots__ = ("h", "pid", "__weakref__")

    def __init__(self, h):
        self.h = h
        self.pid = os.getpid()

    def close(self):
        h, self.h = self.h, None
        if h and self.pid == os.getpid():
            try:
                _ffi.l1_arena_close(h)
            except Exception:
                pass

    def __del__(self):
        self.close()


_managers = weakref.WeakSet()


def _after_fork_in_child():
    # The child must not use (or close) the parent's handle: its client slot,
    # holds and zeroing ring are the parent's.  Views stay valid: the
    # mapping is inherited and is never unmapped in the child.
    for m in list(_managers):
        m._h = None
        m._inherited = True
        m._lock = threading.Lock()      # it may have been held at fork time
        m._inflight = 0


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _close_at_exit():
    # Detach cleanly (holds dropped, zeroing finished) where no view is
    # left; where views are alive, leave the mapping to the process exit.
    for m in list(_managers):
        try:
            m.close()
        except Exception:
            pass


# ---- objects -----------------------------------------------------------------

_RO = 1          # views read-only (published / found by key or id)
_HELD = 2        # this MemoryObj carries a hold (release on __exit__)
_FREED = 4       # freed through this binding
_RELEASED = 8    # its hold was released
_INVALID = 16    # invalidate() (LMCache's valid flag)


class MemoryFormat(enum.Enum):
    """LMCache's MemoryFormat: how the tensor's dimensions are to be read.
    The pool does not interpret it; it rides on the MemoryObj's metadata."""

    UNDEFINED = 0
    KV_2LTD = 1          # [2, num_layers, num_tokens, hidden_dim]
    KV_T2D = 2           # [num_tokens, 2, hidden_dim]
    KV_2TD = 3           # [2, num_tokens, hidden_dim]
    BINARY = 4
    BINARY_BUFFER = 5
    KV_MLA_FMT = 6       # [1, num_layers, num_tokens, aligned_head_size]

    def token_dim(self):
        """The dimension that counts tokens (as LMCache's)."""
        return 2 if self is MemoryFormat.KV_2LTD else 0


@dataclasses.dataclass
class MemoryObjMetadata:
    """LMCache's MemoryObjMetadata of a MemoryObj (``obj.metadata``, also
    ``obj.meta``).  shape/dtype are the first tensor's (torch.Size and the
    layout's dtype); address is the object's byte offset in the tensor
    get_vm_space() returns; phy_size its physical size.  ref_count, is_pin
    and fmt are this process's, kept on this MemoryObj (the pool shares
    holds, not these)."""

    shape: object
    dtype: object
    address: int
    phy_size: int
    ref_count: int = 1
    is_pin: bool = False
    fmt: MemoryFormat = MemoryFormat.UNDEFINED
    cached_positions: object = None
    shapes: Optional[list] = None
    dtypes: Optional[list] = None


def _size_type(shape):
    """torch.Size where torch is importable, else the tuple."""
    torch = get_torch()
    return torch.Size(shape) if torch is not None else tuple(shape)


class MemoryObj:
    """One object in the pool: ``id``, ``offset`` (from the start of the
    pool file), ``size`` (its data size: the layout's exact bytes, LMCache's
    get_size()), ``physical_size`` (the block it occupies: size rounded up
    to align), ``ptr`` (its address in this process), ``layout``
    (MemoryLayoutDesc).

    ``arrays`` / ``array``: NumPy views of its tensors (always available;
    bf16 as uint16 and fp8 as uint8).  ``tensors`` / ``tensor``: torch
    tensors when torch is importable, else the NumPy views.  Views are made
    on first access and cached; all are zero-copy.  Used as a context
    manager, a held object (``manager.hold()``) releases its hold on exit.
    LMCache's MemoryObj methods are here too (get_size, get_physical_size,
    get_tensor, raw_tensor, metadata, ref counts, pin...): see each.
    """

    __slots__ = ("id", "offset", "size", "ptr", "layout", "_mgr", "_arrays",
                 "_tensors", "_state", "physical_size", "_meta", "__weakref__")

    def __init__(self, id, offset, physical_size, ptr, layout, mgr, state=0,
                 size=None):
        self.id = id
        self.offset = offset
        self.physical_size = physical_size
        self.size = physical_size if size is None else size
        self.ptr = ptr
        self.layout = layout
        self._mgr = mgr
        self._arrays = None
        self._tensors = None
        self._state = state
        self._meta = None

    # -- views
    def _make_arrays(self):
        m = self._mgr
        root = m._root
        st = self._state
        if st & (_FREED | _RELEASED) or root is None:
            self._unusable()
        specs = self.layout._specs
        if len(specs) == 1:
            shape, dt, off = specs[0]
            arrs = [_ndarray(shape, dt, root, self.offset + off)]
        else:
            base = self.offset
            arrs = [_ndarray(shape, dt, root, base + off)
                    for shape, dt, off in specs]
        if st & _RO:
            for a in arrs:
                a.flags.writeable = False
        self._arrays = arrs
        # remembered so that close() can drop this cache
        v = m._viewed
        v.append(_weakref(self))
        if len(v) > m._viewed_limit:
            m._prune_viewed()
        return arrs

    def _unusable(self):
        st = self._state
        if st & _FREED:
            raise L1Exception(-114, "object %#x was freed; its memory is no "
                              "longer this MemoryObj's" % self.id)
        if st & _RELEASED:
            raise L1Exception(_EBADF, "object %#x was released; its memory "
                              "is no longer this MemoryObj's" % self.id)
        raise L1Exception(_EBADF, "the manager of object %#x is closed" % self.id)

    @property
    def arrays(self):
        """NumPy views of the tensors (list)."""
        a = self._arrays
        if a is None:
            a = self._make_arrays()
        return a

    @property
    def array(self):
        """NumPy view of the first tensor."""
        a = self._arrays
        if a is None:
            a = self._make_arrays()
        return a[0]

    @property
    def tensors(self):
        """torch tensors (zero-copy) when torch is importable, else the NumPy
        views (list)."""
        t = self._tensors
        if t is None:
            a = self._arrays
            if a is None:
                a = self._make_arrays()
            if get_torch() is None:
                t = a
            else:
                t = [torch_view(x, d) for x, d in zip(a, self.layout._l1dtypes)]
            self._tensors = t
        return t

    @property
    def tensor(self):
        """The first of ``tensors`` (LMCache's MemoryObj.tensor); None once
        invalidate()d, like LMCache."""
        t = self._tensors
        if t is None:
            if self._state & _INVALID:
                return None
            t = self.tensors
        return t[0]

    def get_tensor(self, index):
        """Tensor ``index`` of ``tensors``; None once invalidate()d."""
        if self._state & _INVALID:
            return None
        return self.tensors[index]

    @property
    def torch_tensors(self):
        """torch tensors; raises ImportError without torch."""
        if get_torch() is None:
            raise ImportError("l1arena: torch is not importable")
        return self.tensors

    @property
    def byte_array(self):
        """A uint8 NumPy view of the object's data (size bytes, not the
        padding up to physical_size).  LMCache gives a memoryview:
        memoryview(obj.byte_array) and bytes(obj.byte_array) are the same
        bytes."""
        return self._bytes(self.size)

    def _bytes(self, n):
        root = self._mgr._root
        if self._state & (_FREED | _RELEASED) or root is None:
            self._unusable()
        v = _ndarray((n,), _u8, root, self.offset)
        if self._state & _RO:
            v.flags.writeable = False
        return v

    @property
    def raw_tensor(self):
        """The object's data as one flat uint8 tensor (torch when importable,
        else NumPy) of size bytes; None once invalidate()d, like LMCache."""
        if self._state & _INVALID:
            return None
        v = self._bytes(self.size)
        return torch_view(v, 6) if get_torch() is not None else v  # Dtype.UINT8

    def drop_views(self):
        """Forgets the cached views (those you still hold stay valid)."""
        self._arrays = None
        self._tensors = None

    # -- LMCache-style accessors
    @property
    def data_ptr(self):
        return self.ptr

    @property
    def manager(self):
        return self._mgr

    def get_size(self):
        """The data size in bytes (the layout's exact bytes, or what
        set_used_size() said)."""
        return self.size

    def get_physical_size(self):
        """The bytes the object occupies: its size rounded up to align."""
        return self.physical_size

    def set_used_size(self, nbytes):
        """Says the object holds nbytes of data (1..physical size): get_size(),
        byte_array, the view's st_size and l1ctl get follow, in every
        process.  Only while it is unpublished and this process's; raises
        ValueError / L1Exception otherwise."""
        nbytes = int(nbytes)
        if not 0 < nbytes <= self.physical_size:
            raise ValueError("set_used_size: %d bytes, the object holds 1 to %d"
                             % (nbytes, self.physical_size))
        self._mgr._set_data_size(self, nbytes)
        self.size = nbytes

    def get_shape(self, index=0):
        """Tensor index's shape: a torch.Size where torch is importable (as
        LMCache), else a tuple."""
        self.layout._compile()
        return _size_type(self.layout._specs[index][0])

    def get_shapes(self):
        self.layout._compile()
        return [_size_type(s) for s, _, _ in self.layout._specs]

    def get_dtype(self, index=0):
        return self.layout.dtypes[index]

    def get_dtypes(self):
        return list(self.layout.dtypes)

    def is_valid(self):
        """False once freed, released, invalidate()d, or its manager closed."""
        return (not self._state & (_FREED | _RELEASED | _INVALID)
                and self._mgr._root is not None)

    def invalidate(self):
        """Marks this MemoryObj invalid (LMCache's): is_valid() is False and
        tensor / get_tensor / raw_tensor give None.  The pool object itself
        is not freed (free() or ref_count_down() does that)."""
        self._state |= _INVALID

    # -- LMCache's metadata, reference counts and eviction pins: per process
    @property
    def metadata(self):
        """The MemoryObjMetadata (made on first use, then kept)."""
        m = self._meta
        if m is None:
            shapes = self.get_shapes()
            dtypes = self.get_dtypes()
            m = self._meta = MemoryObjMetadata(
                shape=shapes[0], dtype=dtypes[0],
                address=self.offset - self._mgr._data_off,
                phy_size=self.physical_size, shapes=shapes, dtypes=dtypes)
        return m

    meta = metadata

    def get_memory_format(self):
        return self.metadata.fmt

    def get_num_tokens(self):
        """The first tensor's extent along the format's token dimension (as
        LMCache's: dimension 2 for KV_2LTD, else 0)."""
        m = self.metadata
        return m.shape[m.fmt.token_dim()]

    def ref_count_up(self):
        self.metadata.ref_count += 1

    def ref_count_down(self):
        """Drops one reference; at 0 (and not pinned) the object is freed,
        as LMCache's allocator does.  Counts are this process's: across
        processes use holds."""
        m = self.metadata
        m.ref_count -= 1
        if m.ref_count == 0 and not m.is_pin:
            err = self._mgr.free([self])
            if err is not L1Error.SUCCESS:
                raise L1Exception(err.value if err.value > -1000 else -22,
                                  self._mgr.last_error, what="ref_count_down")

    def get_ref_count(self):
        return self.metadata.ref_count

    def pin(self):
        """Pins against eviction (LMCache's sense; not CUDA pinning, which
        the pool does for all its memory): True."""
        self.metadata.is_pin = True
        return True

    def unpin(self):
        self.metadata.is_pin = False
        return True

    @property
    def is_pinned(self):
        return self.metadata.is_pin

    @property
    def can_evict(self):
        """True when nothing but its owner refers to it: not pinned and one
        reference (holds from other processes keep the bytes anyway)."""
        m = self.metadata
        return not m.is_pin and m.ref_count == 1

    def parent(self):
        """None: every object here is an allocation of its own (LMCache's
        plain host objects have no parent either)."""
        return None

    @property
    def held(self):
        return bool(self._state & _HELD) and not self._state & _RELEASED

    # -- operations (shortcuts to the manager)
    def publish(self, key=None):
        return self._mgr.publish(self, key)

    def info(self):
        return self._mgr.info(self)

    def release(self):
        """Releases the hold this MemoryObj carries (no-op otherwise)."""
        if self._state & _HELD and not self._state & _RELEASED:
            self._mgr.release(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    def __reduce__(self):
        raise TypeError("MemoryObj cannot be pickled: publish it under a key "
                        "and lookup()/hold() it in the other process")

    def __repr__(self):
        flags = []
        if self._state & _FREED:
            flags.append("freed")
        if self.held:
            flags.append("held")
        if self._state & _RO:
            flags.append("read-only")
        return "<MemoryObj id=%#x offset=%#x size=%d/%d layout=%s%s>" % (
            self.id, self.offset, self.size, self.physical_size, self.layout,
            " " + ",".join(flags) if flags else "")


VmSpace = namedtuple("VmSpace", "tensor array base size fd pinned page_size "
                     "data_offset data_size committed pool_id path")
VmSpace.__doc__ = """get_vm_space_info(): ``tensor`` is a uint8 view over the
whole mapping, header and metadata included (torch when importable, else
NumPy), ``array`` the NumPy one; the others are struct l1_vm_space's fields
(data_size is the pool's size as asked for).  Object offsets count from the
mapping's start.  In lazy mode only the first data_offset + committed bytes
are backed: touching beyond is a SIGBUS."""

L1MemoryDesc = namedtuple("L1MemoryDesc", "ptr size align_bytes")

_get_id = attrgetter("id")
_get_mgr = attrgetter("_mgr")


# ---- the manager -----------------------------------------------------------


class L1MemoryManager:
    """A pool of shared KV-cache memory (LMCache's L1MemoryManager).

    ``L1MemoryManager(config)`` creates the pool file and attaches, or
    attaches to the compatible pool already there (see the module doc for
    what compatible means, and who removes a pool);
    ``L1MemoryManager.attach(path)`` attaches to an existing one whatever its
    size.  All methods are thread-safe; any number of processes may attach
    the same pool.
    """

    def __init__(self, config: L1MemoryManagerConfig):
        path = (config.path or os.environ.get("L1ARENA_PATH")
                or _ffi.L1_DEFAULT_PATH)
        c = config.to_c()
        out = ctypes.c_void_p()
        for _ in range(5):
            rc = _ffi.l1_arena_create(ctypes.addressof(c), ctypes.addressof(out))
            if rc != _EEXIST or config.force:
                break
            # a pool is there: attach to it if it is the one config describes
            o = _ffi.L1OpenOpts()
            _ffi.l1_open_opts_init(ctypes.addressof(o))
            o.pin = _pin_mode(config.pin)
            o.pin_mapped = 1 if config.pin_mapped else 0
            o.zero_method = _zero_method(config.zero_method)
            rc = _ffi.l1_arena_open(os.fsencode(path), ctypes.addressof(o),
                                    ctypes.addressof(out))
            if rc != _ENOENT:           # gone meanwhile: create it again
                break
        if rc < 0:
            raise L1Exception(rc, what="create pool %s" % path)
        self.config = config
        self._setup(out.value, readonly=False)
        self._check_compatible(config)

    def _check_compatible(self, config):
        """After attaching to a pool that was there: refuses (closing again)
        one that is not what config asks for, naming the field."""
        u = self.usage()
        for field, want, have in (
                ("size_in_bytes", config.size_in_bytes, u["total_bytes"]),
                ("align_bytes", config.align_bytes or _ffi.L1_DEFAULT_ALIGN,
                 u["align_bytes"])):
            if want != have:
                self.close()
                raise L1Exception(
                    _EEXIST, "a pool with %s=%d is already at %s; this config "
                    "asks for %s=%d: use the same %s, another path, or "
                    "force=True to recreate it (destroying its objects)"
                    % (field, have, self._path, field, want, field),
                    what="create pool %s" % self._path)

    @classmethod
    def attach(cls, path=None, *, readonly=False, read_only=None, pin=None,
               pin_mapped=None, zero_method=None, no_client=False):
        """Attaches to an existing pool (path None: $L1ARENA_PATH or the
        default path).  pin/zero_method None: the C defaults.

        read_only (or readonly): the file is opened O_RDONLY and mapped
        PROT_READ, for readers in the pool's group (pool mode 0640): lookup,
        get, info and reading work; allocate, free, publish and hold return
        L1Error.NOT_PERMITTED (a hold goes through the view: open_path)."""
        if read_only is not None:
            readonly = read_only
        o = _ffi.L1OpenOpts()
        _ffi.l1_open_opts_init(ctypes.addressof(o))
        if pin is not None:
            o.pin = _pin_mode(pin)
        if pin_mapped is not None:
            o.pin_mapped = 1 if pin_mapped else 0
        if zero_method is not None:
            o.zero_method = _zero_method(zero_method)
        o.readonly = 1 if readonly else 0
        o.no_client = 1 if no_client else 0
        if path is None:
            path = os.environ.get("L1ARENA_PATH") or _ffi.L1_DEFAULT_PATH
        path = os.fspath(path)
        out = ctypes.c_void_p()
        rc = _ffi.l1_arena_open(os.fsencode(path), ctypes.addressof(o),
                                ctypes.addressof(out))
        if rc < 0:
            raise L1Exception(rc, what="attach %s" % path)
        self = cls.__new__(cls)
        self.config = None
        self._setup(out.value, readonly=bool(readonly))
        return self

    open = attach

    @classmethod
    def create_or_attach(cls, config: L1MemoryManagerConfig):
        """The constructor's behaviour, by its older name: creates the pool
        of config, or attaches to the compatible one already there."""
        return cls(config)

    def _setup(self, h, readonly):
        self._inherited = False
        self._keeper = _Handle(h)
        self._h = h
        self._readonly = readonly
        self._lock = threading.Lock()
        self._inflight = 0
        self._tls = threading.local()
        self._layouts = {}
        self._foreign_layouts = {}
        self._viewed = []
        self._viewed_limit = 1024
        self._root = None
        try:
            vm = _ffi.L1VmSpace()
            rc = _ffi.l1_get_vm_space(h, ctypes.addressof(vm))
            if rc < 0:
                raise L1Exception(rc, what="l1_get_vm_space")
            if not vm.base or not vm.size:
                raise L1Exception(-22, "l1_get_vm_space returned no mapping")
            u = _ffi.L1Usage()
            rc = _ffi.l1_arena_usage(h, ctypes.addressof(u))
            if rc < 0:
                raise L1Exception(rc, what="l1_arena_usage")
            self._max_objects = u.max_objects or 0xFFFFFFFF
            p = _ffi.l1_arena_path(h)
            self._path = os.fsdecode(p) if p else _ffi.cstr(vm.path)
            self._pool_id = vm.pool_id
            self._base = vm.base
            self._map_size = vm.size
            self._data_off = vm.data_offset
            self._total = vm.data_size
            buf = (ctypes.c_uint8 * vm.size).from_address(vm.base)
            buf._l1_keeper = self._keeper          # views keep the mapping
            root = np.frombuffer(buf, dtype=np.uint8)
            if readonly:
                root.flags.writeable = False
            self._root = root
        except BaseException:
            self._keeper.close()
            self._h = None
            raise
        _managers.add(self)

    # -- plumbing
    def _enter(self):
        with self._lock:
            h = self._h
            if not h:
                self._closed_error()
            self._inflight += 1
            return h

    def _exit(self):
        with self._lock:
            self._inflight -= 1

    def _closed_error(self):
        if self._inherited:
            raise L1Exception(_EBADF, "this L1MemoryManager was inherited "
                              "across fork(); attach again in the child with "
                              "L1MemoryManager.attach(%r)" % self._path)
        raise L1Exception(_EBADF, "the L1MemoryManager of %s is closed"
                          % self._path)

    def _scratch(self, count):
        tls = self._tls
        try:
            buf = tls.buf
            if count <= tls.cap:
                return buf, tls.addr
        except AttributeError:
            pass
        cap = max(64, 1 << (count - 1).bit_length())
        buf = array.array("Q", bytes(8 * _W * cap))
        tls.buf, tls.cap, tls.addr = buf, cap, buf.buffer_info()[0]
        return buf, tls.addr

    def _prune_viewed(self):
        with self._lock:
            alive = [r for r in self._viewed
                     if (o := r()) is not None and o._arrays is not None]
            self._viewed = alive
            self._viewed_limit = max(1024, 2 * len(alive))

    @staticmethod
    def _live_views(root):
        # root is referenced by close()'s variable, this parameter and the
        # getrefcount argument; anything above is a view (or a view in the
        # making on another thread).
        return sys.getrefcount(root) - 3

    def _layout_for(self, layout_id):
        lay = self._layouts.get(layout_id)
        if lay is None:
            c = _ffi.L1Layout()
            h = self._enter()
            try:
                rc = _ffi.l1_arena_layout(h, layout_id, ctypes.addressof(c))
            finally:
                self._exit()
            if rc < 0:
                raise L1Exception(rc, what="layout %d" % layout_id)
            lay = MemoryLayoutDesc.from_c(c)
            lay._compile()
            self._layouts[layout_id] = lay
        return lay

    def _wrap(self, o, state):
        return MemoryObj(o.id, o.offset, o.size, o.ptr,
                         self._layout_for(o.layout_id), self, state, o.data_size)

    # -- LMCache's interface
    def allocate(self, layout: MemoryLayoutDesc, count: int = 1):
        """Allocates count objects of the layout, all or nothing.

        Returns (L1Error.SUCCESS, [MemoryObj, ...]) or (error, []).  As in
        LMCache, every shortage is L1Error.OUT_OF_MEMORY (evict and retry):
        no room after waiting for zeroing, an object larger than the pool,
        or a full object table.  The precise reason is in ``last_error``
        (the library's sentence) and ``last_error_code`` (OUT_OF_OBJECTS for
        the table); other errors (INVALID_ARGUMENT...) come back as they
        are."""
        if layout.__class__ is not MemoryLayoutDesc:
            layout = self._as_layout(layout)
        if layout._c is None:
            layout._compile()
        count = count.__index__()
        if count <= 0:
            if count == 0:
                return L1Error.SUCCESS, []
            raise ValueError("allocate: negative count")
        if count > self._max_objects:
            self._tls.err = ("object table full: allocate asked for %d "
                             "objects, the table holds %d (OUT_OF_OBJECTS)"
                             % (count, self._max_objects))
            self._tls.code = L1Error.OUT_OF_OBJECTS
            return L1Error.OUT_OF_MEMORY, []
        buf, addr = self._scratch(count)
        h = self._enter()
        try:
            rc = _ffi.l1_alloc(h, layout._c_addr, count, addr)
        finally:
            self._exit()
        if rc < 0:
            self._tls.err = _ffi.last_error()
            err = self._tls.code = L1Error.from_code(rc)
            if rc == _ENOSPC:
                self._tls.err += " (OUT_OF_OBJECTS)"
                err = L1Error.OUT_OF_MEMORY
            return err, []
        v = buf[:_W * count].tolist()
        return L1Error.SUCCESS, list(map(
            MemoryObj, v[0::_W], v[1::_W], v[2::_W], v[3::_W],
            repeat(layout, count), repeat(self, count), repeat(0, count),
            v[6::_W]))

    def _as_layout(self, layout):
        """A MemoryLayoutDesc for a subclass instance (itself) or any object
        with shapes and dtypes (LMCache's own MemoryLayoutDesc...), cached."""
        if isinstance(layout, MemoryLayoutDesc):
            return layout
        key = id(layout)
        hit = self._foreign_layouts.get(key)
        if hit is not None and hit[0] is layout:
            return hit[1]
        try:
            conv = MemoryLayoutDesc(shapes=layout.shapes, dtypes=layout.dtypes)
        except AttributeError:
            raise TypeError("allocate: a layout needs shapes and dtypes, not %r"
                            % (layout,)) from None
        if len(self._foreign_layouts) >= 256:
            self._foreign_layouts.clear()
        self._foreign_layouts[key] = (layout, conv)
        return conv

    def allocate_bytes(self, nbytes, count=1):
        """Allocates count objects of nbytes each (a one-tensor uint8
        layout): like allocate()."""
        return self.allocate(MemoryLayoutDesc(shapes=[(int(nbytes),)],
                                              dtypes=[np.uint8]), count)

    def free(self, mem_objs):
        """Frees a batch, all or nothing: L1Error.SUCCESS, or an error with
        nothing freed (L1Error.DOUBLE_FREE, STALE, FOREIGN_OBJECT,
        NOT_PERMITTED, INVALID_ARGUMENT for an object named twice in the
        batch...); the library's sentence is in ``last_error``.  Freed objects' cached views are
        dropped; see the module doc for arrays still held."""
        objs = mem_objs if isinstance(mem_objs, (list, tuple)) else list(mem_objs)
        n = len(objs)
        if n == 0:
            return L1Error.SUCCESS
        mgrs = set(map(_get_mgr, objs))
        if len(mgrs) != 1 or self not in mgrs:
            for m in mgrs:
                if not isinstance(m, L1MemoryManager) or m._pool_id != self._pool_id:
                    self._tls.err = ("free: an object of another pool (%s) "
                                     "was passed to the manager of %s"
                                     % (getattr(m, "_path", "?"), self._path))
                    return L1Error.FOREIGN_OBJECT
        ids = array.array("Q", map(_get_id, objs))
        h = self._enter()
        try:
            rc = _ffi.l1_free_ids(h, ids.buffer_info()[0], n)
        finally:
            self._exit()
        if rc < 0:
            self._tls.err = _ffi.last_error()
            return L1Error.from_code(rc)
        for o in objs:
            o._arrays = o._tensors = None
            o._state |= _FREED
        return L1Error.SUCCESS

    def get_memory_usage(self):
        """(used bytes, total bytes); lock-free."""
        used = ctypes.c_uint64()
        total = ctypes.c_uint64()
        h = self._enter()
        try:
            _ffi.l1_get_memory_usage(h, ctypes.addressof(used),
                                     ctypes.addressof(total))
        finally:
            self._exit()
        return used.value, total.value

    def get_vm_space(self):
        """The pool as one flat uint8 tensor (as LMCache's): size_in_bytes
        long, from the first object's address; a torch tensor where torch
        is importable, else a NumPy array.  Zero-copy; register it once
        with an RDMA / transfer engine.  An object is at byte
        ``obj.metadata.address`` of it.  In lazy mode only the committed
        part is backed (touching beyond is a SIGBUS).  get_vm_space_info()
        has the mapping's details."""
        root = self._root
        if root is None:
            self._closed_error()
        arr = root[self._data_off:self._data_off + self._total]
        if get_torch() is not None:
            return torch_view(arr, 6)  # Dtype.UINT8
        return arr

    def get_vm_space_info(self):
        """The whole mapping (header and metadata too) as a uint8 view plus
        struct l1_vm_space's fields: a VmSpace."""
        vm = _ffi.L1VmSpace()
        h = self._enter()
        try:
            rc = _ffi.l1_get_vm_space(h, ctypes.addressof(vm))
        finally:
            self._exit()
        if rc < 0:
            raise L1Exception(rc, what="get_vm_space")
        root = self._root
        if root is None:
            self._closed_error()
        arr = root[:vm.size]
        tensor = arr
        if get_torch() is not None:
            tensor = torch_view(arr, 6)  # Dtype.UINT8
        return VmSpace(tensor, arr, vm.base, vm.size, vm.fd, vm.pinned,
                       vm.page_size, vm.data_offset, vm.data_size,
                       vm.committed, vm.pool_id, _ffi.cstr(vm.path))

    def get_l1_memory_desc(self):
        """LMCache's L1MemoryDesc(ptr, size, align_bytes) of the pool: the
        address of get_vm_space()'s first byte, size_in_bytes, the block
        size."""
        u = self.usage()
        return L1MemoryDesc(self._base + self._data_off, u["total_bytes"],
                            u["align_bytes"])

    def memcheck(self, repair=False):
        """Verifies every invariant of the shared state: True when clean.
        The report is in ``last_memcheck_report``; memcheck_report() returns
        (problems, report)."""
        n, _ = self.memcheck_report(repair)
        return n == 0

    def memcheck_report(self, repair=False):
        buf = ctypes.create_string_buffer(1 << 16)
        h = self._enter()
        try:
            rc = _ffi.l1_arena_memcheck(h, 1 if repair else 0, buf, len(buf))
        finally:
            self._exit()
        if rc < 0:
            raise L1Exception(rc, what="memcheck")
        self.last_memcheck_report = buf.value.decode("utf-8", "replace")
        return rc, self.last_memcheck_report

    def close(self, wait=0.0):
        """Detaches from the pool (the pool file stays; see destroy()).

        Refuses with L1ViewsAliveError while views into the pool are still
        reachable (after dropping the views cached in MemoryObjs and running
        the garbage collector); with wait > 0, waits up to that many seconds
        for them to go.  Waits for calls in flight on other threads.
        Idempotent."""
        with self._lock:
            root = self._root
            if root is None:
                return
            self._root = None            # no new views from here on
        n = 0
        try:
            if self._live_views(root):
                for r in self._viewed:
                    o = r()
                    if o is not None:
                        o._arrays = o._tensors = None
                if self._live_views(root):
                    _gc.collect()
                deadline = time.monotonic() + max(0.0, wait)
                while self._live_views(root) and time.monotonic() < deadline:
                    time.sleep(0.01)
                    _gc.collect()
                n = self._live_views(root)
        except BaseException:
            with self._lock:
                self._root = root
            raise
        if n:
            with self._lock:
                self._root = root
            # the traceback keeps this frame: it must not keep the root
            del root
            raise L1ViewsAliveError(n, self._path)
        with self._lock:
            self._h = None               # no new calls from here on
        while True:
            with self._lock:
                if self._inflight == 0:
                    break
            time.sleep(0.001)
        self._viewed = []
        self._layouts.clear()
        del root
        self._keeper.close()
        _managers.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- extras
    @property
    def path(self):
        return self._path

    @property
    def pool_id(self):
        return self._pool_id

    @property
    def closed(self):
        return self._root is None

    @property
    def last_error(self):
        """The library's sentence about this thread's last failed call made
        through a method that returned an L1Error."""
        return getattr(self._tls, "err", "")

    @property
    def last_error_code(self):
        """The precise L1Error of this thread's last failed allocate()
        (OUT_OF_OBJECTS where allocate said OUT_OF_MEMORY for a full object
        table)."""
        return getattr(self._tls, "code", L1Error.SUCCESS)

    def _set_data_size(self, obj, nbytes):
        h = self._enter()
        try:
            rc = _ffi.l1_obj_set_data_size(h, obj.id, nbytes)
        finally:
            self._exit()
        if rc < 0:
            raise L1Exception(rc, what="set_used_size of %#x" % obj.id)

    def destroy(self, force=False):
        """Closes this manager and removes the pool file (-EBUSY while
        other clients are attached, unless force)."""
        path = self._path
        self.close()
        destroy(path, force=force)

    def publish(self, obj, key=None):
        """Makes an ALLOCATED object immutable and findable by key (None:
        publish without a key).  Returns an L1Error (EXISTS for a taken key,
        NOT_PERMITTED when not the owner...)."""
        kb = None
        if key is not None:
            kb = key.encode() if isinstance(key, str) else bytes(key)
            if len(kb) > _ffi.L1_KEY_MAX or b"\0" in kb:
                self._tls.err = "publish: key longer than %d bytes or with a NUL" % _ffi.L1_KEY_MAX
                return L1Error.INVALID_ARGUMENT
        oid = obj.id if isinstance(obj, MemoryObj) else int(obj)
        h = self._enter()
        try:
            rc = _ffi.l1_publish(h, oid, kb)
        finally:
            self._exit()
        if rc < 0:
            self._tls.err = _ffi.last_error()
            return L1Error.from_code(rc)
        if isinstance(obj, MemoryObj):
            obj._state |= _RO
        return L1Error.SUCCESS

    def _find(self, fn, arg, state, what, key=False):
        o = _ffi.L1Obj()
        h = self._enter()
        try:
            rc = fn(h, arg, ctypes.addressof(o))
        finally:
            self._exit()
        if rc < 0:
            if rc == _ENOENT and not state & _HELD:
                return None
            raise L1Exception(rc, what=what, key=key)
        try:
            return self._wrap(o, state)
        except BaseException:
            if state & _HELD:
                self._release_id(o.id)
            raise

    @staticmethod
    def _key(key):
        return key.encode() if isinstance(key, str) else bytes(key)

    def lookup(self, key):
        """The PUBLISHED object under key (read-only views), or None.  It
        is not held: another process may free it meanwhile; use hold() to
        read it safely."""
        return self._find(_ffi.l1_lookup, self._key(key), _RO, "lookup %r" % (key,),
                          key=True)

    def get(self, obj_id):
        """The live object with this id, or None (read-only views)."""
        return self._find(_ffi.l1_get, int(obj_id), _RO, "get %#x" % int(obj_id))

    def hold(self, key_or_id):
        """Takes a hold on an object (by key, id or MemoryObj) and returns it
        as a held MemoryObj, to use as a context manager:

            with manager.hold("key") as obj: data = obj.array.copy()

        While held, its bytes stay (a free meanwhile takes effect at the
        last release).  Raises L1Exception (error NOT_FOUND...) when it
        cannot."""
        if isinstance(key_or_id, MemoryObj):
            key_or_id = key_or_id.id
        if isinstance(key_or_id, (str, bytes)):
            return self._find(_ffi.l1_hold_key, self._key(key_or_id),
                              _RO | _HELD, "hold %r" % (key_or_id,), key=True)
        return self._find(_ffi.l1_hold, int(key_or_id), _RO | _HELD,
                          "hold %#x" % int(key_or_id))

    def open_path(self, view_path):
        """Resolves a path inside a mounted l1fs view (MOUNT/objects/ID or
        MOUNT/keys/KEY) to its object, held, zero-copy from this process's
        own mapping (no FUSE in the data path).  Use as a context manager or
        release() it."""
        return self._find(_ffi.l1_open_path, os.fsencode(view_path),
                          _RO | _HELD, "open_path %s" % view_path)

    def _release_id(self, oid):
        h = self._enter()
        try:
            return _ffi.l1_release(h, oid)
        finally:
            self._exit()

    def release(self, obj):
        """Releases one hold (a held MemoryObj, or an id)."""
        if isinstance(obj, MemoryObj):
            if obj._state & _RELEASED:
                raise L1Exception(-114, "release: object %#x already released" % obj.id)
            rc = self._release_id(obj.id)
            if rc < 0:
                raise L1Exception(rc, what="release %#x" % obj.id)
            obj._state |= _RELEASED
            obj._arrays = obj._tensors = None
            return
        rc = self._release_id(int(obj))
        if rc < 0:
            raise L1Exception(rc, what="release %#x" % int(obj))

    def info(self, obj):
        """Everything the object's record says, as a dict."""
        oid = obj.id if isinstance(obj, MemoryObj) else int(obj)
        i = _ffi.L1ObjInfo()
        h = self._enter()
        try:
            rc = _ffi.l1_obj_info(h, oid, ctypes.addressof(i))
        finally:
            self._exit()
        if rc < 0:
            raise L1Exception(rc, what="info %#x" % oid)
        return self._info_dict(i)

    def _info_dict(self, i):
        d = _ffi.struct_dict(i)
        s = _ffi.l1_state_name(i.state)
        d["state_name"] = s.decode() if s else str(i.state)
        return d

    def objects(self, batch=1024):
        """Every live object's record (list of dicts)."""
        out = []
        cursor = ctypes.c_uint64(0)
        arr = (_ffi.L1ObjInfo * batch)()
        while True:
            h = self._enter()
            try:
                n = _ffi.l1_obj_list(h, ctypes.addressof(cursor),
                                     ctypes.addressof(arr), batch)
            finally:
                self._exit()
            if n < 0:
                raise L1Exception(n, what="objects")
            if n == 0:
                return out
            out.extend(self._info_dict(arr[i]) for i in range(n))

    def usage(self):
        """struct l1_usage as a dict (objects: counts by state)."""
        u = _ffi.L1Usage()
        h = self._enter()
        try:
            rc = _ffi.l1_arena_usage(h, ctypes.addressof(u))
        finally:
            self._exit()
        if rc < 0:
            raise L1Exception(rc, what="usage")
        return _ffi.struct_dict(u)

    stats = usage

    def clients(self, max_clients=1024):
        """The attached processes (list of dicts)."""
        arr = (_ffi.L1ClientInfo * max_clients)()
        h = self._enter()
        try:
            n = _ffi.l1_arena_clients(h, ctypes.addressof(arr), max_clients)
        finally:
            self._exit()
        if n < 0:
            raise L1Exception(n, what="clients")
        return [_ffi.struct_dict(arr[i]) for i in range(min(n, max_clients))]

    def pinned_ranges(self, max_ranges=4096):
        arr = (_ffi.L1Range * max_ranges)()
        h = self._enter()
        try:
            n = _ffi.l1_arena_pinned_ranges(h, ctypes.addressof(arr), max_ranges)
        finally:
            self._exit()
        if n < 0:
            raise L1Exception(n, what="pinned_ranges")
        return [(arr[i].offset, arr[i].len) for i in range(min(n, max_ranges))]

    def gc(self):
        """Reclaims what dead processes left (unpublished objects, dirty
        extents, holds, client slots): a dict of counts."""
        r = _ffi.L1GcResult()
        h = self._enter()
        try:
            rc = _ffi.l1_arena_gc(h, ctypes.addressof(r))
        finally:
            self._exit()
        if rc < 0:
            raise L1Exception(rc, what="gc")
        return _ffi.struct_dict(r)

    def flush(self, timeout=None):
        """Waits until freed memory is zeroed (nothing dirty): True, or
        False when timeout (seconds) passed first."""
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        h = self._enter()
        try:
            rc = _ffi.l1_arena_flush(h, ms)
        finally:
            self._exit()
        if rc == _ETIMEDOUT:
            return False
        if rc < 0:
            raise L1Exception(rc, what="flush")
        return True

    def chmod(self, obj, uid, gid, mode):
        oid = obj.id if isinstance(obj, MemoryObj) else int(obj)
        h = self._enter()
        try:
            rc = _ffi.l1_obj_chmod(h, oid, uid, gid, mode)
        finally:
            self._exit()
        if rc < 0:
            raise L1Exception(rc, what="chmod %#x" % oid)

    def __repr__(self):
        return "<L1MemoryManager %s%s>" % (self._path, " closed" if self.closed else "")


def destroy(path, force=False):
    """Removes a pool file (-EBUSY while clients are attached, unless
    force).  Raises L1Exception on failure."""
    rc = _ffi.l1_arena_destroy(os.fsencode(path), 1 if force else 0)
    if rc < 0:
        raise L1Exception(rc, what="destroy %s" % path)


def create_memory_allocator(config: L1MemoryManagerConfig):
    """LMCache's factory: the L1MemoryManager of config (created, or
    attached where a compatible pool is there already)."""
    return L1MemoryManager(config)
