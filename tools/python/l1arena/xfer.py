"""l1arena.xfer: moving objects between the pools of two machines over UCX,
through libl1xfer.so (the C API of tools/l1xfer, loaded with ctypes).

    from l1arena import L1MemoryManager
    from l1arena.xfer import Peer

    manager = L1MemoryManager.attach("/dev/hugepages/l1arena")
    with Peer(manager, "10.0.0.1:13337") as peer:     # `l1xfer serve` there
        r = peer.fetch(["vllm@llama@1@0@abc", ...])   # or fetch_prefix("vllm@llama@")
        print(r.moved, r.present, r.missing, r.error)

``fetch`` allocates the missing objects in the local pool, reads them with
one-sided RDMA-style gets straight from the peer's pool into them and
publishes them under the same keys; keys already here are skipped.  Nothing
is published before all its bytes have arrived.  ``push`` is the other way.
The transport is UCX's choice (``UCX_TLS``, ``UCX_NET_DEVICES``).

The library is found through $L1XFER_LIB, else next to the libl1arena.so in
use (build/lib in the tree), else the system loader; it is loaded on first
use, so ``import l1arena`` works without UCX.
"""

import ctypes
import os
from collections import namedtuple

from . import _ffi
from .errors import L1Error, L1Exception

__all__ = ["Peer", "FetchResult", "fetch", "load"]

FetchResult = namedtuple(
    "FetchResult",
    "error requested moved present missing failed bytes seconds message")
FetchResult.__doc__ = """What a fetch or push did: ``error`` (L1Error.SUCCESS
when every key is now there), the counts (``moved`` transferred, ``present``
already there and skipped, ``missing`` not published at the source,
``failed``), ``bytes`` moved, ``seconds``, and the library's sentence."""


class _Stats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in (
        "requested", "moved", "present", "missing", "failed", "bytes", "ns")]


_P = ctypes.c_void_p
_PROTOS = {
    "l1_xfer_last_error": (ctypes.c_char_p, []),
    "l1_xfer_connect": (ctypes.c_int, [_P, ctypes.c_char_p, _P]),
    "l1_xfer_set_chunk": (ctypes.c_int, [_P, ctypes.c_uint32]),
    "l1_xfer_get": (ctypes.c_int, [_P, _P, ctypes.c_uint32, _P]),
    "l1_xfer_get_prefix": (ctypes.c_int, [_P, ctypes.c_char_p, _P]),
    "l1_xfer_put": (ctypes.c_int, [_P, _P, ctypes.c_uint32, _P]),
    "l1_xfer_list": (ctypes.c_int, [_P, ctypes.c_char_p, _P]),
    "l1_xfer_keys_free": (None, [_P, ctypes.c_uint32]),
    "l1_xfer_transport": (ctypes.c_char_p, [_P]),
    "l1_xfer_close": (None, [_P]),
}
_lib = None


def load():
    """The loaded libl1xfer.so (ImportError with what was tried)."""
    global _lib
    if _lib is not None:
        return _lib
    env = os.environ.get("L1XFER_LIB")
    cands = [env] if env else [
        os.path.join(os.path.dirname(os.path.abspath(_ffi.LIB_PATH)), "libl1xfer.so"),
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "libl1xfer.so"),
        "libl1xfer.so"]
    tried = []
    for p in cands:
        try:
            lib = ctypes.CDLL(p)
        except OSError as e:
            tried.append("%s (%s)" % (p, e))
            continue
        for name, (res, args) in _PROTOS.items():
            f = getattr(lib, name)
            f.restype, f.argtypes = res, args
        _lib = lib
        return lib
    raise ImportError("l1arena.xfer: libl1xfer.so not found (make bins with "
                      "libucx-dev installed, or set L1XFER_LIB). Tried: "
                      + "; ".join(tried))


def _keys_array(keys):
    enc = [k.encode() if isinstance(k, str) else bytes(k) for k in keys]
    arr = (ctypes.c_char_p * max(len(enc), 1))(*enc)
    return arr, len(enc)


class Peer:
    """A connection from a local pool (an L1MemoryManager) to `l1xfer serve`
    at "HOST:PORT".  One thread at a time; close() (or a with block) ends it.
    The manager must stay open while the Peer is."""

    def __init__(self, manager, address, chunk=None):
        self._lib = load()
        self._mgr = manager
        self.address = address
        h = manager._enter()
        try:
            out = ctypes.c_void_p()
            rc = self._lib.l1_xfer_connect(h, address.encode(), ctypes.byref(out))
        finally:
            manager._exit()
        if rc < 0:
            raise L1Exception(rc, self._error(), what="connect to %s" % address)
        self._x = out.value
        if chunk is not None:
            rc = self._lib.l1_xfer_set_chunk(self._x, int(chunk))
            if rc < 0:
                self.close()
                raise L1Exception(rc, self._error())

    def _error(self):
        return (self._lib.l1_xfer_last_error() or b"").decode(errors="replace")

    def _handle(self):
        if not self._x:
            raise L1Exception(-9, "this Peer is closed")
        return self._x

    def _run(self, fn, *args):
        st = _Stats()
        x = self._handle()
        self._mgr._enter()          # the pool stays attached meanwhile
        try:
            rc = fn(x, *args, ctypes.byref(st))
        finally:
            self._mgr._exit()
        return FetchResult(L1Error.from_code(rc), st.requested, st.moved,
                           st.present, st.missing, st.failed, st.bytes,
                           st.ns / 1e9, self._error() if rc < 0 else "")

    def fetch(self, keys):
        """Fetches the keys into the local pool: a FetchResult."""
        arr, n = _keys_array(keys)
        return self._run(self._lib.l1_xfer_get, arr, n)

    def fetch_prefix(self, prefix):
        """Fetches every key published at the peer that starts with prefix."""
        p = prefix.encode() if isinstance(prefix, str) else bytes(prefix)
        return self._run(self._lib.l1_xfer_get_prefix, p)

    def push(self, keys):
        """Pushes locally published keys into the peer's pool."""
        arr, n = _keys_array(keys)
        return self._run(self._lib.l1_xfer_put, arr, n)

    def list(self, prefix=""):
        """The keys published at the peer that start with prefix."""
        out = ctypes.POINTER(ctypes.c_char_p)()
        p = prefix.encode() if isinstance(prefix, str) else bytes(prefix)
        n = self._lib.l1_xfer_list(self._handle(), p, ctypes.byref(out))
        if n < 0:
            raise L1Exception(n, self._error(), what="list %s" % self.address)
        try:
            return [out[i].decode(errors="surrogateescape") for i in range(n)]
        finally:
            self._lib.l1_xfer_keys_free(out, n)

    @property
    def transport(self):
        """What UCX chose, e.g. "rma: tcp/eth0; am: tcp/eth0"."""
        return self._lib.l1_xfer_transport(self._handle()).decode()

    def close(self):
        x, self._x = getattr(self, "_x", None), None
        if x:
            self._lib.l1_xfer_close(x)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


def fetch(manager, address, keys=None, prefix=None, chunk=None):
    """One-shot: connects, fetches keys (or every key under prefix), closes."""
    if (keys is None) == (prefix is None):
        raise ValueError("fetch: give keys or prefix")
    with Peer(manager, address, chunk) as p:
        return p.fetch(keys) if prefix is None else p.fetch_prefix(prefix)
