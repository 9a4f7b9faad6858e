"""Errors: ``L1Error`` (the codes LMCache's interface returns) and
``L1Exception`` (raised where an interface has no error code to return).

Every C call returns 0 or a negative errno; ``L1Error`` maps those errnos to
names.  ``L1Error.SUCCESS`` and ``L1Error.OUT_OF_MEMORY`` are the two the
LMCache interface uses; LMCache's other names (``KEY_NOT_EXIST``,
``KEY_IS_LOCKED``, ``KEY_NOT_WRITABLE``) are aliases of the matching errno.
"""

import enum
import errno as _errno

from . import _ffi

__all__ = ["L1Error", "L1Exception", "strerror"]


class L1Error(enum.Enum):
    """Result codes.  The value is the C return code (0 or a negative errno);
    ``error.errno`` gives the positive errno."""

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

    # LMCache's names for the same conditions (aliases)
    KEY_NOT_EXIST = -_errno.ENOENT
    KEY_IS_LOCKED = -_errno.EBUSY
    KEY_NOT_WRITABLE = -_errno.EPERM

    @classmethod
    def from_code(cls, code):
        """The L1Error for a C return code (0 or negative errno)."""
        if code >= 0:
            return cls.SUCCESS
        try:
            return cls(code)
        except ValueError:
            return cls.UNKNOWN

    @property
    def errno(self):
        return -self.value if self.value != -1000 else 0

    def describe(self):
        return strerror(self)


def strerror(error):
    """A human-readable sentence for an L1Error (or a C return code)."""
    if isinstance(error, L1Error):
        if error is L1Error.SUCCESS:
            return "Operation succeeded."
        if error is L1Error.UNKNOWN:
            return "Unknown error."
        return _ffi.strerror(error.value)
    return _ffi.strerror(int(error))


class L1Exception(RuntimeError):
    """A failed C call.  ``code`` is the negative errno, ``error`` the
    L1Error, ``message`` the library's l1_last_error() sentence."""

    def __init__(self, code, message=None, what=None):
        self.code = int(code)
        self.error = L1Error.from_code(self.code)
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
