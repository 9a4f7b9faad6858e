"""Element types: ``Dtype`` (enum l1_dtype) and the conversions from what
users pass in layouts (torch dtypes, NumPy dtypes and scalar types, strings
such as "fp16", "bf16", "float8_e4m3fn", "<f2") and to the NumPy / torch
types of the views.

NumPy has no bfloat16 or float8: their views are raw-typed, ``uint16`` for
bf16 and ``uint8`` for fp8 (same element size, so shapes are the layout's).
Torch views use the real torch dtype (``torch.bfloat16``,
``torch.float8_e4m3fn``, ``torch.float8_e5m2``) where the installed torch has
it.  torch is never imported here unless the caller already did or asks for
torch views.
"""

import enum
import sys

import numpy as np

from . import _ffi

__all__ = ["Dtype", "to_dtype", "numpy_dtype", "torch_dtype", "logical_dtype"]


class Dtype(enum.IntEnum):
    """enum l1_dtype"""
    FP16 = _ffi.L1_DTYPE_FP16
    BF16 = _ffi.L1_DTYPE_BF16
    FP32 = _ffi.L1_DTYPE_FP32
    FP64 = _ffi.L1_DTYPE_FP64
    INT8 = _ffi.L1_DTYPE_INT8
    UINT8 = _ffi.L1_DTYPE_UINT8
    INT16 = _ffi.L1_DTYPE_INT16
    INT32 = _ffi.L1_DTYPE_INT32
    INT64 = _ffi.L1_DTYPE_INT64
    FP8_E4M3 = _ffi.L1_DTYPE_FP8_E4M3
    FP8_E5M2 = _ffi.L1_DTYPE_FP8_E5M2
    BOOL = _ffi.L1_DTYPE_BOOL
    UINT16 = _ffi.L1_DTYPE_UINT16
    UINT32 = _ffi.L1_DTYPE_UINT32
    UINT64 = _ffi.L1_DTYPE_UINT64

    @property
    def itemsize(self):
        return _ITEMSIZE[self]


_ITEMSIZE = {
    Dtype.FP16: 2, Dtype.BF16: 2, Dtype.FP32: 4, Dtype.FP64: 8,
    Dtype.INT8: 1, Dtype.UINT8: 1, Dtype.INT16: 2, Dtype.INT32: 4,
    Dtype.INT64: 8, Dtype.FP8_E4M3: 1, Dtype.FP8_E5M2: 1, Dtype.BOOL: 1,
    Dtype.UINT16: 2, Dtype.UINT32: 4, Dtype.UINT64: 8,
}

# The NumPy type of a view (raw-typed where NumPy lacks the type).
_NUMPY = {
    Dtype.FP16: np.dtype(np.float16), Dtype.BF16: np.dtype(np.uint16),
    Dtype.FP32: np.dtype(np.float32), Dtype.FP64: np.dtype(np.float64),
    Dtype.INT8: np.dtype(np.int8), Dtype.UINT8: np.dtype(np.uint8),
    Dtype.INT16: np.dtype(np.int16), Dtype.INT32: np.dtype(np.int32),
    Dtype.INT64: np.dtype(np.int64), Dtype.FP8_E4M3: np.dtype(np.uint8),
    Dtype.FP8_E5M2: np.dtype(np.uint8), Dtype.BOOL: np.dtype(np.bool_),
    Dtype.UINT16: np.dtype(np.uint16), Dtype.UINT32: np.dtype(np.uint32),
    Dtype.UINT64: np.dtype(np.uint64),
}
RAW_TYPED = frozenset((Dtype.BF16, Dtype.FP8_E4M3, Dtype.FP8_E5M2))

# NumPy dtype names (including ml_dtypes' bfloat16/float8 extension types).
_FROM_NUMPY_NAME = {
    "float16": Dtype.FP16, "float32": Dtype.FP32, "float64": Dtype.FP64,
    "int8": Dtype.INT8, "uint8": Dtype.UINT8, "int16": Dtype.INT16,
    "int32": Dtype.INT32, "int64": Dtype.INT64, "bool": Dtype.BOOL,
    "uint16": Dtype.UINT16, "uint32": Dtype.UINT32, "uint64": Dtype.UINT64,
    "bfloat16": Dtype.BF16, "float8_e4m3fn": Dtype.FP8_E4M3,
    "float8_e5m2": Dtype.FP8_E5M2,
}

# torch dtype names (str(torch.float16) == "torch.float16").
_FROM_TORCH_NAME = dict(_FROM_NUMPY_NAME)
_FROM_TORCH_NAME.update({
    "half": Dtype.FP16, "float": Dtype.FP32, "double": Dtype.FP64,
    "short": Dtype.INT16, "int": Dtype.INT32, "long": Dtype.INT64,
})
_TORCH_NAME = {
    Dtype.FP16: "float16", Dtype.BF16: "bfloat16", Dtype.FP32: "float32",
    Dtype.FP64: "float64", Dtype.INT8: "int8", Dtype.UINT8: "uint8",
    Dtype.INT16: "int16", Dtype.INT32: "int32", Dtype.INT64: "int64",
    Dtype.FP8_E4M3: "float8_e4m3fn", Dtype.FP8_E5M2: "float8_e5m2",
    Dtype.BOOL: "bool", Dtype.UINT16: "uint16", Dtype.UINT32: "uint32",
    Dtype.UINT64: "uint64",
}

# Layouts read back from the pool describe dtypes this way: NumPy dtypes
# where NumPy has the type, l1arena's names otherwise.
_LOGICAL = dict(_NUMPY)
_LOGICAL.update({Dtype.BF16: "bf16", Dtype.FP8_E4M3: "fp8_e4m3",
                 Dtype.FP8_E5M2: "fp8_e5m2"})


def _is_torch_dtype(d):
    t = type(d)
    return t.__name__ == "dtype" and t.__module__ == "torch"


def to_dtype(d):
    """Dtype for a torch dtype, NumPy dtype or scalar type, string, or Dtype.
    Raises TypeError/ValueError for anything else."""
    if isinstance(d, Dtype):
        return d
    if _is_torch_dtype(d):
        name = str(d).rsplit(".", 1)[-1]
        try:
            return _FROM_TORCH_NAME[name]
        except KeyError:
            raise ValueError("l1arena: unsupported torch dtype %s" % d) from None
    if isinstance(d, (str, bytes)):
        s = d.decode() if isinstance(d, bytes) else d
        if s.startswith("torch."):
            s = s[6:]
        v = _ffi.l1_dtype_parse(s.encode())
        if v:
            return Dtype(v)
        if s in _FROM_TORCH_NAME:
            return _FROM_TORCH_NAME[s]
        try:
            nd = np.dtype(s)
        except TypeError:
            raise ValueError("l1arena: unknown dtype %r" % d) from None
        return _from_numpy(nd, d)
    if isinstance(d, bool) or (isinstance(d, int) and not 0 < d < _ffi.L1_DTYPE_COUNT):
        raise ValueError("l1arena: unknown dtype %r" % (d,))
    if isinstance(d, int):
        return Dtype(d)
    try:
        nd = np.dtype(d)
    except TypeError:
        raise TypeError("l1arena: not a dtype: %r" % (d,)) from None
    return _from_numpy(nd, d)


def _from_numpy(nd, orig):
    if nd.byteorder == ">" or (nd.byteorder == "=" and sys.byteorder == "big"):
        raise ValueError("l1arena: big-endian dtype %r" % (orig,))
    try:
        return _FROM_NUMPY_NAME[nd.name]
    except KeyError:
        raise ValueError("l1arena: unsupported NumPy dtype %r" % (orig,)) from None


def numpy_dtype(d):
    """The NumPy dtype of views of this Dtype (uint16 for bf16, uint8 for
    fp8: raw-typed)."""
    return _NUMPY[to_dtype(d)]


def logical_dtype(d):
    """How layouts read back from the pool name this Dtype."""
    return _LOGICAL[to_dtype(d)]


_torch_mod = None
_torch_tried = False


def get_torch():
    """The torch module, or None when it cannot be imported (tried once)."""
    global _torch_mod, _torch_tried
    if _torch_mod is not None:
        return _torch_mod
    m = sys.modules.get("torch")
    if m is not None and hasattr(m, "from_numpy"):
        _torch_mod = m
        return m
    if not _torch_tried:
        _torch_tried = True
        try:
            import torch  # noqa: F401
            _torch_mod = torch
        except Exception:
            _torch_mod = None
    return _torch_mod


def torch_dtype(d):
    """The torch dtype for a Dtype, or None where this torch lacks it."""
    torch = get_torch()
    if torch is None:
        return None
    return getattr(torch, _TORCH_NAME[to_dtype(d)], None)


_SIGNED = {np.dtype(np.uint16): np.dtype(np.int16),
           np.dtype(np.uint32): np.dtype(np.int32),
           np.dtype(np.uint64): np.dtype(np.int64)}


def torch_view(arr, d):
    """A zero-copy torch tensor over the NumPy view arr of Dtype d."""
    torch = get_torch()
    if arr.flags.writeable:
        t = _tensor_from_numpy(torch, arr)
    else:
        import warnings
        with warnings.catch_warnings():
            # Read-only arrays (published or held objects): torch warns that
            # it cannot express that; the binding documents it instead.
            warnings.simplefilter("ignore", UserWarning)
            t = _tensor_from_numpy(torch, arr)
    td = _torch_types.get(d)
    if td is None:
        td = _torch_types[d] = torch_dtype(d) or False
    if td and t.dtype != td:
        try:
            t = t.view(td)
        except (RuntimeError, TypeError):
            pass  # leave the raw-typed view
    return t


_torch_types = {}


_from_numpy_ok = {}


def _numpy_type_ok(torch, dt):
    """Whether this torch takes NumPy arrays of dtype dt (torch < 2.3 has
    no uint16/32/64 tensors).  Asked once per dtype, of a throwaway array:
    a failed torch.from_numpy keeps a reference to the array it refused (a
    leak in older torch), and a pool view kept that way would hold the
    mapping, making close() refuse for good."""
    ok = _from_numpy_ok.get(dt)
    if ok is None:
        try:
            torch.from_numpy(np.zeros(1, dt))
            ok = True
        except TypeError:
            ok = False
        _from_numpy_ok[dt] = ok
    return ok


def _tensor_from_numpy(torch, arr):
    dt = arr.dtype
    if dt in _SIGNED and not _numpy_type_ok(torch, dt):
        # same bits, as the signed type this torch has
        arr = arr.view(_SIGNED[dt])
    return torch.from_numpy(arr)
