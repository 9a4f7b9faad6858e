"""LMCache's L1MemoryManager / MemoryObj surface, item by item (issue 12):
each test names the item it covers and checks it the way LMCache code
would call it.  The README's Python table points here.  Tests that need
torch skip with a reason where it is missing; the NumPy forms run in a
child process with torch hidden, so both run on a machine with torch."""

import errno
import mmap
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import l1arena
from l1arena import (L1Error, L1Exception, L1MemoryManager, MemoryLayoutDesc,
                     MemoryFormat, create_memory_allocator)
from conftest import MiB, HAVE_TORCH, child_env, config, needs_torch, on_hugetlbfs

if HAVE_TORCH:
    import torch

F16_357 = MemoryLayoutDesc(shapes=[(3, 5, 7)], dtypes=[np.float16])     # 210 B
BF16_400K = MemoryLayoutDesc(shapes=[(100, 2, 1024)], dtypes=["bfloat16"])


# -- item 1: is_valid() is a method -----------------------------------------

def test_item1_is_valid_is_a_method(pool):
    err, (a, b) = pool.allocate(F16_357, 2)
    assert a.is_valid() is True
    b.invalidate()
    assert b.is_valid() is False
    assert b.tensor is None and b.get_tensor(0) is None and b.raw_tensor is None
    assert pool.free([a, b]) == L1Error.SUCCESS
    assert a.is_valid() is False


# -- item 2: data size and physical size -------------------------------------

def test_item2_data_size_and_physical_size(pool):
    err, (o,) = pool.allocate(F16_357, 1)
    assert err == L1Error.SUCCESS
    assert o.get_size() == 210 == o.size
    assert o.get_physical_size() == 4096 == o.metadata.phy_size
    assert o.byte_array.nbytes == 210
    o.array[...] = np.arange(105, dtype=np.float16).reshape(3, 5, 7)
    assert bytes(o.byte_array) == o.array.tobytes()
    assert memoryview(o.byte_array).nbytes == 210
    assert len(o.raw_tensor) == 210
    assert pool.info(o)["obj"]["data_size"] == 210
    assert pool.info(o)["obj"]["size"] == 4096
    # by bytes: the count asked for
    err, (b,) = pool.allocate_bytes(5)
    assert b.get_size() == 5 and b.get_physical_size() == 4096
    # another process's view of the same object agrees
    other = L1MemoryManager.attach(pool.path)
    try:
        g = other.get(o.id)
        assert g.get_size() == 210 and g.get_physical_size() == 4096
        del g
    finally:
        other.close()
    assert pool.free([o, b]) == L1Error.SUCCESS


def test_item2_set_used_size(pool):
    err, (o,) = pool.allocate_bytes(10000)
    assert o.get_physical_size() == 12288
    o.set_used_size(100)
    assert o.get_size() == 100 and o.byte_array.nbytes == 100
    assert pool.info(o)["obj"]["data_size"] == 100          # in the record
    o.set_used_size(12288)
    assert o.get_size() == 12288
    for bad in (0, 12289):
        with pytest.raises(ValueError, match="1 to 12288"):
            o.set_used_size(bad)
    assert pool.publish(o, "used") == L1Error.SUCCESS
    with pytest.raises(L1Exception) as ei:                 # immutable now
        o.set_used_size(50)
    assert ei.value.error == L1Error.BUSY
    assert pool.lookup("used").get_size() == 12288
    assert pool.free([o]) == L1Error.SUCCESS


# -- item 3: the pool holds size_in_bytes, not the huge page multiple ---------

def test_item3_pool_size_is_what_was_asked(pools):
    size = 13107200                                          # 12.5 MiB
    m = pools(size=size, grow_step_bytes=0)
    assert m.get_memory_usage() == (0, size)
    assert m.usage()["total_bytes"] == size
    err, objs = m.allocate(BF16_400K, 32)
    assert err == L1Error.SUCCESS
    err, more = m.allocate(BF16_400K, 1)                     # LMCache refuses it too
    assert err == L1Error.OUT_OF_MEMORY and more == []
    assert m.get_memory_usage() == (size, size)
    assert m.free(objs) == L1Error.SUCCESS


# -- item 4: get_l1_memory_desc() is the pool, not the mapping ----------------

def test_item4_memory_desc(pool):
    d = pool.get_l1_memory_desc()
    assert d.size == pool.config.size_in_bytes == 64 * MiB
    assert d.align_bytes == 4096
    err, (o,) = pool.allocate(F16_357, 1)
    assert d.ptr + o.metadata.address == o.ptr
    assert pool.free([o]) == L1Error.SUCCESS


# -- item 5: shortages read as OUT_OF_MEMORY ----------------------------------

def test_item5_larger_than_pool_is_out_of_memory(pool):
    err, objs = pool.allocate_bytes(65 * MiB)
    assert err == L1Error.OUT_OF_MEMORY and objs == []
    assert "larger than the pool" in pool.last_error
    assert pool.last_error_code == L1Error.OUT_OF_MEMORY


def test_item5_full_object_table_is_out_of_memory(pools):
    m = pools(max_objects=1024)
    err, objs = m.allocate_bytes(16, 1024)
    assert err == L1Error.SUCCESS
    for n in (1, 2000):                # the library's refusal, and the binding's
        err, more = m.allocate_bytes(16, n)
        assert err == L1Error.OUT_OF_MEMORY and more == []
        assert "object table full" in m.last_error
        assert m.last_error_code == L1Error.OUT_OF_OBJECTS
    assert m.free(objs) == L1Error.SUCCESS


# -- item 6: torch < 2.3 and bf16: close() still works -------------------------

@needs_torch
def test_item6_bf16_tensor_then_close(pools):
    m = pools()
    err, (o,) = m.allocate(BF16_400K, 1)
    t = o.tensor
    assert t.dtype == torch.bfloat16 and tuple(t.shape) == (100, 2, 1024)
    t.fill_(1.5)
    assert float(o.get_tensor(0)[99, 1, 1023]) == 1.5
    # every unsigned raw view torch is given converts without a leak
    for dt in (np.uint16, np.uint32, np.uint64):
        v = o.byte_array[:64].view(dt)
        before = sys.getrefcount(v)
        l1arena.dtypes.torch_view(v, 6)
        assert sys.getrefcount(v) == before
        del v
    del t
    assert m.free([o]) == L1Error.SUCCESS
    m.close()                           # refused for good before the fix
    assert m.closed


# -- item 7: align_bytes above the page is honoured ---------------------------

@pytest.mark.parametrize("align", [64 << 10, 4 * MiB])
def test_item7_alignment(pools, align):
    m = pools(size=16 * MiB, align_bytes=align, grow_step_bytes=0)
    err, objs = m.allocate(F16_357, 3)
    assert err == L1Error.SUCCESS
    assert [o.ptr % align for o in objs] == [0, 0, 0]
    assert all(o.get_physical_size() == align for o in objs)
    assert m.free(objs) == L1Error.SUCCESS


# -- item 8: get_vm_space() returns the tensor itself -------------------------

@needs_torch
def test_item8_vm_space_is_a_torch_tensor(pool):
    t = pool.get_vm_space()
    assert isinstance(t, torch.Tensor) and t.dtype == torch.uint8
    assert t.numel() == 64 * MiB
    assert t.data_ptr() == pool.get_l1_memory_desc().ptr
    err, (o,) = pool.allocate(F16_357, 1)
    o.byte_array[:3] = [7, 8, 9]
    a = o.metadata.address
    assert t[a:a + 3].tolist() == [7, 8, 9]
    del t
    assert pool.free([o]) == L1Error.SUCCESS


NUMPY_ONLY = r'''
import sys
sys.modules["torch"] = None          # torch is not importable here
import numpy as np
from l1arena import L1MemoryManager, L1MemoryManagerConfig, MemoryLayoutDesc
m = L1MemoryManager(L1MemoryManagerConfig(size_in_bytes=%d, use_lazy=False,
    path=%r, allow_shm=%r, pin="off"))
v = m.get_vm_space()
err, (o,) = m.allocate(MemoryLayoutDesc(shapes=[(3, 5, 7)], dtypes=[np.float16]), 1)
o.byte_array[:2] = [5, 6]
a = o.metadata.address
print(type(v).__name__, v.dtype, v.size, list(v[a:a + 2]), type(o.get_shape()).__name__,
      type(o.raw_tensor).__name__)
del v
m.free([o]); m.destroy(force=True)
'''


def test_item8_vm_space_is_a_numpy_array_without_torch(pools):
    p = pools.path()
    code = NUMPY_ONLY % (8 * MiB, p, not on_hugetlbfs())
    r = subprocess.run([sys.executable, "-c", code], env=child_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ndarray", "uint8", str(8 * MiB), "[5,", "6]",
                                "tuple", "ndarray"]


# -- item 9: the factory ------------------------------------------------------

def test_item9_create_memory_allocator(pools):
    p = pools.path()
    m = create_memory_allocator(config(p))
    try:
        assert isinstance(m, L1MemoryManager)
        assert m.get_memory_usage() == (0, 64 * MiB)
    finally:
        m.close()


# -- item 10: a compatible pool is attached, another is refused ---------------

def test_item10_attach_compatible_refuse_other(pools):
    p = pools.path()
    a = L1MemoryManager(config(p))
    b = L1MemoryManager(config(p))                    # a second worker
    try:
        assert a.pool_id == b.pool_id
        err, objs = b.allocate(F16_357, 1)
        assert a.get_memory_usage()[0] == 4096
        for kw, field in (({"size": 32 * MiB}, "size_in_bytes"),
                          ({"align_bytes": 8192}, "align_bytes")):
            with pytest.raises(L1Exception) as ei:
                L1MemoryManager(config(p, **kw))
            assert ei.value.error == L1Error.EXISTS
            assert field in ei.value.message, ei.value.message
        assert b.free(objs) == L1Error.SUCCESS
    finally:
        b.close()
        a.close()
    assert os.path.exists(p)            # close() never removes the pool
    c = L1MemoryManager(config(p))      # a later run attaches to it
    assert c.pool_id == a.pool_id
    c.destroy()                         # the owner removes it
    assert not os.path.exists(p)


def test_item10_other_format_is_refused(pools):
    p = pools.path()
    L1MemoryManager(config(p)).close()
    # l1_hdr.major (offset 8) of a future format; through a mapping, since
    # hugetlbfs files take no write()
    with open(p, "r+b") as f, mmap.mmap(f.fileno(), os.fstat(f.fileno()).st_size) as mm:
        mm[8:12] = struct.pack("<I", 99)
    with pytest.raises(L1Exception) as ei:
        L1MemoryManager(config(p))
    assert ei.value.error == L1Error.VERSION_MISMATCH
    assert "format version 99" in ei.value.message


# -- item 11: the rest of LMCache's MemoryObj ----------------------------------

def test_item11_memory_obj_methods(pool):
    lay = MemoryLayoutDesc(shapes=[(2, 4, 8, 16), (4,)], dtypes=[np.float16, np.int32])
    err, (o,) = pool.allocate(lay, 1)
    assert o.get_tensor(1).shape == (4,) and o.get_tensor(0).shape == (2, 4, 8, 16)
    m = o.metadata
    assert o.meta is m and m.phy_size == o.get_physical_size()
    assert tuple(m.shape) == (2, 4, 8, 16) and m.dtype == np.float16
    assert [tuple(s) for s in m.shapes] == [(2, 4, 8, 16), (4,)]
    assert o.get_memory_format() is MemoryFormat.UNDEFINED
    assert o.get_num_tokens() == 2                 # dimension 0
    m.fmt = MemoryFormat.KV_2LTD
    assert o.get_memory_format() is MemoryFormat.KV_2LTD
    assert o.get_num_tokens() == 8                 # dimension 2
    assert o.parent() is None
    # references and eviction pins, as LMCache's host objects
    assert o.get_ref_count() == 1 and o.can_evict and not o.is_pinned
    o.ref_count_up()
    assert o.get_ref_count() == 2 and not o.can_evict
    assert o.pin() is True and o.is_pinned
    o.ref_count_down()
    o.ref_count_down()                             # 0 but pinned: kept
    assert o.is_valid() and pool.get_memory_usage()[0] > 0
    assert o.unpin() is True and not o.is_pinned
    o.ref_count_up()
    o.ref_count_down()                             # 0, unpinned: freed
    assert not o.is_valid() and pool.get_memory_usage()[0] == 0


@needs_torch
def test_item11_torch_shapes_and_raw_tensor(pool):
    err, (o,) = pool.allocate(F16_357, 1)
    assert isinstance(o.get_shape(), torch.Size) and o.get_shape() == torch.Size([3, 5, 7])
    assert all(isinstance(s, torch.Size) for s in o.get_shapes())
    assert isinstance(o.metadata.shape, torch.Size)
    r = o.raw_tensor
    assert isinstance(r, torch.Tensor) and r.dtype == torch.uint8 and r.numel() == 210
    assert r.data_ptr() == o.ptr
    assert isinstance(o.get_tensor(0), torch.Tensor)
    del r
    assert pool.free([o]) == L1Error.SUCCESS


# -- item 12: L1Error's names ---------------------------------------------------

def test_item12_l1error_names(pool):
    for name in ("SUCCESS", "KEY_NOT_EXIST", "KEY_NOT_READABLE", "KEY_NOT_WRITABLE",
                 "KEY_IN_WRONG_STATE", "KEY_IS_LOCKED", "OUT_OF_MEMORY"):
        e = L1Error[name]
        assert e.name == name                      # no alias reports another name
        assert l1arena.strerror(e)
    assert len({L1Error[n] for n in ("KEY_NOT_EXIST", "NOT_FOUND", "KEY_IS_LOCKED",
                                     "BUSY", "KEY_NOT_WRITABLE", "NOT_PERMITTED")}) == 6
    assert L1Error.KEY_IS_LOCKED.errno == errno.EBUSY
    with pytest.raises(L1Exception) as ei:
        pool.hold("no-such-key")
    assert ei.value.error is L1Error.KEY_NOT_EXIST
    with pytest.raises(L1Exception) as ei:
        pool.hold(12345 << 32 | 7)                 # by id: the errno's name
    assert ei.value.error in (L1Error.NOT_FOUND, L1Error.STALE)
    # a batch naming one object twice: INVALID_ARGUMENT, nothing freed
    err, (o,) = pool.allocate(F16_357, 1)
    assert pool.free([o, o]) == L1Error.INVALID_ARGUMENT
    assert "second time" in pool.last_error and o.is_valid()
    assert pool.free([o]) == L1Error.SUCCESS
