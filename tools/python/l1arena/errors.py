"""Errors: ``L1Error`` (the codes LMCache's interface returns) and
``L1Exception`` (raised where an interface has no error code to return).

Every C call returns 0 or a negative errno; ``L1Error.from_code`` maps those
errnos to names (``NOT_FOUND``, ``DOUBLE_FREE``...).  LMCache's own names
(``KEY_NOT_EXIST``, ``KEY_NOT_READABLE``, ``KEY_NOT_WRITABLE``,
``KEY_IN_WRONG_STATE``, ``KEY_IS_LOCKED``, ``OUT_OF_MEMORY``) are members of
their own, each reporting its own name: ``from_code(code, key=True)`` gives
them for calls that look an object up by key (the L1Exception of
``hold(key)`` and ``lookup(key)``), and ``error.errno`` gives the errno
behind any member.
"""

import enum
import errno as _errno

from . import _ffi

__all__ = ["L1Error", "L1Exception", "strerror"]


class L1Error(enum.Enum):
    """Result codes.  For the errno-derived members the value is the C
    return code (0 or a negative errno); LMCache's key-level names have
    values of their own (below -1000) so that each is a distinct member with
    its own ``name``.  ``error.errno`` gives the positive errno of either."""

    SUCCESS = 0
    OUT_OF_MEMORY = -_errno.ENOMEM           # not enough free (zeroed) space
    OUT_OF_OBJECTS = -_errno.ENOSPC          # the object table is full
    INVALID_ARGUMENT = -_errno.EINVAL
    DOUBLE_FREE = -_errno.EALREADY           # object already freed
    STALE = -_errno.ESTALE                   # id names a reused slot
    FOREIGN_OBJECT = -_errno.EXDEV           # object of another pool
    NOT_FOUND = -_errno.ENOENT               # no such object / key / pool
    EXISTS = -_errno.EEXIST                  # key published / pool exists
    NOT_PERMITTED = -_errno.EPERM            # not the owner
    BUSY = -_errno.EBUSY                     # held, or pool in use
    VERSION_MISMATCH = -_errno.EPROTO        # pool file of another version
    CORRUPT = -_errno.EBADMSG                # not a valid pool file
    TIMED_OUT = -_errno.ETIMEDOUT
    ACCESS_DENIED = -_errno.EACCES
    NOT_SUPPORTED = -_errno.ENOSYS
    UNKNOWN = -1000                          # any other negative errno

    # LMCache's key-level names: distinct members, not aliases
    KEY_NOT_EXIST = -1001                    # no object under the key
    KEY_NOT_READABLE = -1002                 # there, but this caller may not read it
    KEY_NOT_WRITABLE = -1003                 # there, but not this caller's to change
    KEY_IN_WRONG_STATE = -1004               # published already, freed, or reused
    KEY_IS_LOCKED = -1005                    # held (or in use) elsewhere

    @classmethod
    def from_code(cls, code, key=False):
        """The L1Error for a C return code (0 or negative errno); with key,
        LMCache's KEY_* name where one fits (for calls by key)."""
        if code >= 0:
            return cls.SUCCESS
        if key and code in _KEY_OF_ERRNO:
            return cls[_KEY_OF_ERRNO[code]]
        try:
            return cls(code)
        except ValueError:
            return cls.UNKNOWN

    @property
    def errno(self):
        v = _ERRNO_OF_KEY.get(self.name, self.value)
        return -v if -1000 < v < 0 else 0

    def describe(self):
        return strerror(self)


# errno -> LMCache's key-level name, for calls that name an object by key
_KEY_OF_ERRNO = {
    -_errno.ENOENT: "KEY_NOT_EXIST",
    -_errno.EACCES: "KEY_NOT_READABLE",
    -_errno.EPERM: "KEY_NOT_WRITABLE",
    -_errno.EEXIST: "KEY_IN_WRONG_STATE",
    -_errno.EALREADY: "KEY_IN_WRONG_STATE",
    -_errno.ESTALE: "KEY_IN_WRONG_STATE",
    -_errno.EBUSY: "KEY_IS_LOCKED",
}
# and back: the errno a KEY_* name stands for
_ERRNO_OF_KEY = {
    "KEY_NOT_EXIST": -_errno.ENOENT,
    "KEY_NOT_READABLE": -_errno.EACCES,
    "KEY_NOT_WRITABLE": -_errno.EPERM,
    "KEY_IN_WRONG_STATE": -_errno.EEXIST,
    "KEY_IS_LOCKED": -_errno.EBUSY,
}

_LMCACHE_TEXT = {
    "KEY_NOT_EXIST": "The specified key does not exist.",
    "KEY_NOT_READABLE": "The specified key exists but cannot be read.",
    "KEY_NOT_WRITABLE": "The specified key exists but cannot be written.",
    "KEY_IN_WRONG_STATE": "The specified key is in the wrong state for the operation.",
    "KEY_IS_LOCKED": "The specified key is locked and cannot perform the operation.",
}


def strerror(error):
    """A human-readable sentence for an L1Error (or a C return code)."""
    if isinstance(error, L1Error):
        if error is L1Error.SUCCESS:
            return "Operation succeeded."
        if error is L1Error.UNKNOWN:
            return "Unknown error."
        if error.name in _LMCACHE_TEXT:
            return _LMCACHE_TEXT[error.name]
        return _ffi.strerror(error.value)
    return _ffi.strerror(int(error))


class L1Exception(RuntimeError):
    """A failed C call.  ``code`` is the negative errno, ``error`` the
    L1Error (LMCache's KEY_* name for a call by key), ``message`` the
    library's l1_last_error() sentence."""

    def __init__(self, code, message=None, what=None, key=False):
        self.code = int(code)
        self.error = L1Error.from_code(self.code, key)
        if message is None:
            message = _ffi.last_error()
        self.message = message or _ffi.strerror(self.code)
        self.errno = -self.code if self.code < 0 else 0
        text = "%s: %s" % (what, self.message) if what else self.message
        name = _errno.errorcode.get(self.errno, self.error.name)
        super().__init__("%s [%s]" % (text, name))


class L1ViewsAliveError(L1Exception):
    """close() refused: NumPy arrays or torch tensors that point into the pool
    mapping are still reachable.  Drop them (or wait for them) and call
    close() again; the manager stays open and usable meanwhile."""

    def __init__(self, count, path):
        self.live_views = count
        super().__init__(
            -_errno.EBUSY,
            "%d live view(s) into pool %s are still reachable (NumPy arrays, "
            "torch tensors, get_vm_space() views, or slices of them); drop "
            "them before close(), or call close(wait=SECONDS)" % (count, path))
