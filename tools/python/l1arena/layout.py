"""MemoryLayoutDesc: the tensor shapes and dtypes of a MemoryObj.

As in LMCache, ``MemoryLayoutDesc(shapes=[...], dtypes=[...])`` keeps what it
was given (torch.Size and torch dtypes, or tuples/lists/ints and NumPy dtypes
or strings).  On first use it converts itself once into a ``struct
l1_layout`` plus, per tensor, its shape, view dtype and byte offset inside
the object; allocate() and the views reuse those, so build a layout once and
allocate from it many times.
"""

import ctypes
import numbers
import threading

from . import _ffi
from .dtypes import Dtype, to_dtype, numpy_dtype, logical_dtype

__all__ = ["MemoryLayoutDesc"]

_compile_lock = threading.RLock()


def _shape(s):
    if isinstance(s, numbers.Integral) and not isinstance(s, bool):
        return (int(s),)
    try:
        dims = tuple(int(d) for d in s)
    except TypeError:
        raise TypeError("l1arena: a shape must be a sequence of ints "
                        "(torch.Size, tuple, list), not %r" % (s,)) from None
    for d in dims:
        if d < 0:
            raise ValueError("l1arena: negative dimension in shape %r" % (s,))
    return dims


class MemoryLayoutDesc:
    """Describes the layout of a memory object: one shape and one dtype per
    tensor (1..4 tensors, 0..8 dimensions each), laid out back to back."""

    __slots__ = ("shapes", "dtypes", "_c", "_c_addr", "_specs", "_nbytes",
                 "_l1dtypes", "__weakref__")

    def __init__(self, shapes, dtypes):
        # LMCache passes lists of shapes; a single shape (a tuple of ints or
        # a torch.Size) and a single dtype are accepted too.
        if not isinstance(shapes, (list, tuple)) or (
                isinstance(shapes, tuple)
                and all(isinstance(x, numbers.Integral) for x in shapes)):
            shapes = [shapes]
        if not isinstance(dtypes, (list, tuple)):
            dtypes = [dtypes]
        if len(shapes) != len(dtypes):
            raise ValueError("MemoryLayoutDesc: shapes and dtype must have "
                             "the same length")
        self.shapes = list(shapes)
        self.dtypes = list(dtypes)
        self._c = None

    # -- LMCache-style value semantics
    def __eq__(self, other):
        if not isinstance(other, MemoryLayoutDesc):
            return NotImplemented
        self._compile()
        other._compile()
        return (self._l1dtypes == other._l1dtypes
                and [s for s, _, _ in self._specs] == [s for s, _, _ in other._specs])

    def __hash__(self):
        self._compile()
        return hash((tuple(self._l1dtypes), tuple(s for s, _, _ in self._specs)))

    def __repr__(self):
        return "MemoryLayoutDesc(shapes=%r, dtypes=%r)" % (self.shapes, self.dtypes)

    def __str__(self):
        return self.format()

    # -- conversion
    def _compile(self):
        """Builds (once) the C struct and the per-tensor view specs."""
        if self._c is not None:
            return self._c
        # once only, even from several threads: allocate() hands the
        # struct's address to C, so it must never be replaced
        with _compile_lock:
            if self._c is None:
                self._build()
        return self._c

    def _build(self):
        n = len(self.shapes)
        if not 1 <= n <= _ffi.L1_MAX_TENSORS:
            raise ValueError("MemoryLayoutDesc: %d tensors (1..%d allowed)"
                             % (n, _ffi.L1_MAX_TENSORS))
        c = _ffi.L1Layout()
        c.ntensors = n
        shapes = []
        dts = []
        for i, (s, d) in enumerate(zip(self.shapes, self.dtypes)):
            dims = _shape(s)
            if len(dims) > _ffi.L1_MAX_DIMS:
                raise ValueError("MemoryLayoutDesc: tensor %d has %d dims "
                                 "(at most %d)" % (i, len(dims), _ffi.L1_MAX_DIMS))
            dt = to_dtype(d)
            c.t[i].dtype = int(dt)
            c.t[i].ndim = len(dims)
            for j, x in enumerate(dims):
                c.t[i].shape[j] = x
            shapes.append(dims)
            dts.append(dt)
        addr = ctypes.addressof(c)
        total = ctypes.c_uint64()
        rc = _ffi.l1_layout_bytes(addr, ctypes.addressof(total))
        if rc < 0:
            from .errors import L1Exception
            raise L1Exception(rc, what="MemoryLayoutDesc %r" % (self,))
        specs = []
        off = ctypes.c_uint64()
        for i in range(n):
            rc = _ffi.l1_layout_tensor_offset(addr, i, ctypes.addressof(off))
            if rc < 0:
                from .errors import L1Exception
                raise L1Exception(rc, what="tensor offset")
            specs.append((shapes[i], numpy_dtype(dts[i]), off.value))
        self._specs = specs
        self._l1dtypes = dts
        self._nbytes = total.value
        self._c_addr = addr
        self._c = c

    @property
    def nbytes(self):
        """Bytes of the tensors (before rounding up to the pool's align)."""
        self._compile()
        return self._nbytes

    @property
    def l1_dtypes(self):
        """The dtypes as l1arena Dtype values."""
        self._compile()
        return list(self._l1dtypes)

    @property
    def tensor_offsets(self):
        """Byte offset of each tensor inside an object of this layout."""
        self._compile()
        return [off for _, _, off in self._specs]

    def format(self):
        """The C text form, e.g. "[2,32,128]:fp16"."""
        self._compile()
        buf = ctypes.create_string_buffer(512)
        rc = _ffi.l1_layout_format(self._c_addr, buf, len(buf))
        if rc < 0:
            from .errors import L1Exception
            raise L1Exception(rc, what="l1_layout_format")
        return buf.value.decode()

    @classmethod
    def parse(cls, text):
        """A layout from its text form ("[2,32,128]:fp16;[4]:int32")."""
        c = _ffi.L1Layout()
        rc = _ffi.l1_layout_parse(text.encode(), ctypes.addressof(c))
        if rc < 0:
            from .errors import L1Exception
            raise L1Exception(rc, what="layout %r" % (text,))
        return cls.from_c(c)

    @classmethod
    def from_c(cls, c):
        """A layout from a struct l1_layout (shapes as tuples, dtypes as
        NumPy dtypes, or "bf16"/"fp8_e4m3"/"fp8_e5m2" where NumPy has none)."""
        shapes = []
        dtypes = []
        for i in range(c.ntensors):
            t = c.t[i]
            shapes.append(tuple(t.shape[j] for j in range(t.ndim)))
            dtypes.append(logical_dtype(Dtype(t.dtype)))
        return cls(shapes=shapes, dtypes=dtypes)
