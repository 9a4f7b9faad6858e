"""l1arena: LMCache's L1 memory manager interface over libl1arena, a pool of
shared (hugetlbfs) memory for KV caches that several processes map at once.

    from l1arena import (L1MemoryManagerConfig, L1MemoryManager,
                         MemoryLayoutDesc, L1Error)

    config = L1MemoryManagerConfig(size_in_bytes=1 << 30, use_lazy=False)
    manager = L1MemoryManager(config)
    layout = MemoryLayoutDesc(shapes=[(2, 32, 128)], dtypes=["float16"])
    error, objs = manager.allocate(layout, count=10)
    if error == L1Error.SUCCESS:
        objs[0].array[:] = 1          # zero-copy NumPy view
    manager.free(objs)
    manager.close()

Pure Python (ctypes): the library is found through $L1ARENA_LIB, else next
to the package (a bundled copy, or ../../build/lib when used from the
source tree), else the system loader.  See l1arena.manager for lifetimes.
"""

from ._ffi import LIB_PATH, MISSING as MISSING_FUNCTIONS
from .dtypes import Dtype
from .errors import L1Error, L1Exception, L1ViewsAliveError, strerror
from .layout import MemoryLayoutDesc
from .manager import (L1MemoryManagerConfig, L1MemoryManager, MemoryObj,
                      VmSpace, L1MemoryDesc, MemoryFormat, MemoryObjMetadata,
                      create_memory_allocator, destroy, parse_size)

__version__ = "1.0.0"

__all__ = [
    "L1MemoryManagerConfig", "L1MemoryManager", "MemoryLayoutDesc", "L1Error",
    "MemoryObj", "L1Exception", "L1ViewsAliveError", "Dtype", "VmSpace",
    "L1MemoryDesc", "MemoryFormat", "MemoryObjMetadata",
    "create_memory_allocator", "destroy", "parse_size", "strerror", "LIB_PATH",
    "MISSING_FUNCTIONS",
]
