"""torch: layouts from torch.Size and torch dtypes, zero-copy torch tensors
(real bfloat16/float8 dtypes), the vm space as a torch uint8 tensor, and
live tensors blocking close().  Skipped, visibly, where torch is absent."""

import ctypes

import numpy as np
import pytest

from conftest import HAVE_TORCH, needs_torch

pytestmark = needs_torch

if HAVE_TORCH:
    import torch

from l1arena import L1Error, L1ViewsAliveError, MemoryLayoutDesc, Dtype


def test_torch_layout_and_views(pool):
    lay = MemoryLayoutDesc(shapes=[torch.Size([2, 32, 128]), torch.Size([4])],
                           dtypes=[torch.float16, torch.int32])
    assert lay == MemoryLayoutDesc(shapes=[(2, 32, 128), (4,)],
                                   dtypes=[np.float16, "int32"])
    err, objs = pool.allocate(lay, 2)
    assert err == L1Error.SUCCESS
    o = objs[0]
    t = o.tensor
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float16
    assert t.shape == torch.Size([2, 32, 128]) and t.data_ptr() == o.ptr
    t.fill_(1.5)
    assert (o.array == 1.5).all()
    assert ctypes.string_at(o.ptr, 2) == np.float16(1.5).tobytes()
    assert o.tensors[1].dtype == torch.int32
    assert o.tensors[1].data_ptr() == o.ptr + lay.tensor_offsets[1]
    del t
    assert pool.free(objs) == L1Error.SUCCESS


@pytest.mark.parametrize("name,l1", [("bfloat16", Dtype.BF16),
                                     ("float8_e4m3fn", Dtype.FP8_E4M3),
                                     ("float8_e5m2", Dtype.FP8_E5M2)])
def test_torch_types_numpy_lacks(pool, name, l1):
    td = getattr(torch, name, None)
    if td is None:
        pytest.skip("this torch has no %s" % name)
    lay = MemoryLayoutDesc(shapes=[torch.Size([8, 16])], dtypes=[td])
    assert lay.l1_dtypes == [l1]
    err, objs = pool.allocate(lay, 1)
    o = objs[0]
    t = o.tensor
    assert t.dtype == td and t.shape == (8, 16) and t.data_ptr() == o.ptr
    src = torch.linspace(-2, 2, 128).reshape(8, 16).to(td)
    t.copy_(src)
    raw = o.array                                       # raw-typed NumPy view
    assert raw.dtype == (np.uint16 if l1 == Dtype.BF16 else np.uint8)
    assert raw.tobytes() == src.view(torch.uint8 if raw.itemsize == 1
                                     else torch.int16).numpy().tobytes()
    del t, raw
    assert pool.free(objs) == L1Error.SUCCESS


def test_vm_space_tensor_and_close(pool):
    vm = pool.get_vm_space_info()
    assert isinstance(vm.tensor, torch.Tensor) and vm.tensor.dtype == torch.uint8
    assert vm.tensor.data_ptr() == vm.base and vm.tensor.numel() == vm.size
    t = vm.tensor
    del vm
    with pytest.raises(L1ViewsAliveError):
        pool.close()
    del t
    pool.close()


@pytest.mark.parametrize("dt,want,raw", [
    ("fp8_e4m3", "float8_e4m3fn", torch.uint8 if HAVE_TORCH else None),
    ("fp8_e5m2", "float8_e5m2", torch.uint8 if HAVE_TORCH else None),
    ("uint16", "uint16", torch.int16 if HAVE_TORCH else None),
    ("uint32", "uint32", torch.int32 if HAVE_TORCH else None),
    ("uint64", "uint64", torch.int64 if HAVE_TORCH else None),
    ("bool", "bool", torch.bool if HAVE_TORCH else None),
])
def test_torch_views_of_every_dtype(pool, dt, want, raw):
    # the real torch dtype where this torch has it, else a raw-typed tensor
    # of the same element size
    lay = MemoryLayoutDesc(shapes=[(4, 4)], dtypes=[dt])
    err, objs = pool.allocate(lay, 1)
    t = objs[0].tensor
    assert t.dtype == getattr(torch, want, raw)
    assert t.data_ptr() == objs[0].ptr and t.shape == (4, 4)
    assert t.element_size() == objs[0].array.itemsize
    del t
    assert pool.free(objs) == L1Error.SUCCESS


def test_read_only_objects_give_tensors_without_warnings(pool, recwarn):
    lay = MemoryLayoutDesc(shapes=[torch.Size([8])], dtypes=[torch.float32])
    err, objs = pool.allocate(lay, 1)
    objs[0].tensor.fill_(3)
    assert pool.publish(objs[0], "ro-torch") == L1Error.SUCCESS
    with pool.hold("ro-torch") as h:
        assert (h.tensor == 3).all()
    assert not [w for w in recwarn if "writable" in str(w.message)]
    assert pool.free(objs) == L1Error.SUCCESS
