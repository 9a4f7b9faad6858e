"""The L1MemoryManager interface: allocate (all or nothing), free (double
free, foreign, duplicate), usage, views of every dtype, layouts, config
defaults, vm space, memcheck, gc, flush, publish/lookup/hold, attach."""

import ctypes
import errno

import numpy as np
import pytest

import l1arena
from l1arena import (L1Error, L1Exception, L1MemoryManager, MemoryLayoutDesc,
                     Dtype, _ffi)
from conftest import MiB, config, remove_pool, pool_path

KV = MemoryLayoutDesc(shapes=[(2, 32, 128)], dtypes=[np.float16])  # 16 KiB


def test_allocate_and_free(pool):
    err, objs = pool.allocate(KV, count=10)
    assert err == L1Error.SUCCESS and len(objs) == 10
    assert len({o.id for o in objs}) == 10
    used, total = pool.get_memory_usage()
    assert used == 10 * 16384 and total == 64 * MiB
    offs = sorted(o.offset for o in objs)
    for a, b in zip(offs, offs[1:]):
        assert b - a >= 16384                      # no overlap
    vm = pool.get_vm_space_info()
    for o in objs:
        assert o.size == 16384 and o.layout is KV
        assert o.ptr == vm.base + o.offset
        assert vm.data_offset <= o.offset < vm.data_offset + vm.data_size
        assert o.array.shape == (2, 32, 128) and o.array.dtype == np.float16
        assert o.array.ctypes.data == o.ptr
        assert o.get_size() == 16384 and o.get_shape() == (2, 32, 128)
    del vm
    assert pool.free(objs) == L1Error.SUCCESS
    assert pool.get_memory_usage()[0] == 0
    assert pool.memcheck(), pool.last_memcheck_report


def test_allocate_zero_count_and_bad_count(pool):
    assert pool.allocate(KV, 0) == (L1Error.SUCCESS, [])
    with pytest.raises(ValueError):
        pool.allocate(KV, -1)
    assert pool.free([]) == L1Error.SUCCESS


def test_out_of_memory_is_all_or_nothing(pools):
    m = pools(size=4 * MiB)
    big = MemoryLayoutDesc(shapes=[(1 << 20,)], dtypes=["uint8"])   # 1 MiB
    err, objs = m.allocate(big, count=5)
    assert err == L1Error.OUT_OF_MEMORY and objs == []
    assert "memory" in m.last_error.lower() or m.last_error
    assert m.get_memory_usage()[0] == 0            # nothing was allocated
    err, objs = m.allocate(big, count=4)
    assert err == L1Error.SUCCESS and len(objs) == 4
    err2, more = m.allocate(big, count=1)
    assert err2 == L1Error.OUT_OF_MEMORY and more == []
    assert m.get_memory_usage()[0] == 4 * MiB
    assert m.free(objs) == L1Error.SUCCESS
    assert m.flush(timeout=10)
    err, objs = m.allocate(big, count=4)           # all room is back
    assert err == L1Error.SUCCESS
    assert m.free(objs) == L1Error.SUCCESS
    assert m.usage()["ooms"] >= 2
    assert m.memcheck(), m.last_memcheck_report


def test_object_table_full(pools):
    m = pools(size=64 * MiB, max_objects=1024)
    tiny = MemoryLayoutDesc(shapes=[(16,)], dtypes=[np.uint8])
    err, objs = m.allocate(tiny, 1024)
    assert err == L1Error.SUCCESS
    err, more = m.allocate(tiny, 1)
    # through LMCache's interface a full table reads as OUT_OF_MEMORY (evict
    # and retry); the precise reason is in the text and last_error_code
    assert err == L1Error.OUT_OF_MEMORY and more == []
    assert "object table full" in m.last_error and "OUT_OF_OBJECTS" in m.last_error
    assert m.last_error_code == L1Error.OUT_OF_OBJECTS
    assert m.free(objs) == L1Error.SUCCESS


def test_double_free_detected(pool):
    err, objs = pool.allocate(KV, 3)
    assert pool.free(objs) == L1Error.SUCCESS
    err = pool.free(objs)
    assert err in (L1Error.DOUBLE_FREE, L1Error.STALE), err
    assert "free" in pool.last_error
    err = pool.free(objs[1:2])
    assert err in (L1Error.DOUBLE_FREE, L1Error.STALE)
    # a batch with one already-freed object frees nothing
    err, fresh = pool.allocate(KV, 2)
    assert pool.free(fresh + objs[:1]) in (L1Error.DOUBLE_FREE, L1Error.STALE)
    assert pool.get_memory_usage()[0] == 2 * 16384
    assert pool.free(fresh) == L1Error.SUCCESS
    assert pool.memcheck(), pool.last_memcheck_report


def test_duplicate_in_batch_frees_nothing(pool):
    err, objs = pool.allocate(KV, 2)
    err = pool.free([objs[0], objs[1], objs[0]])
    assert err != L1Error.SUCCESS
    assert pool.get_memory_usage()[0] == 2 * 16384
    assert pool.free(objs) == L1Error.SUCCESS


def test_foreign_object_refused(pools):
    a, b = pools(name="a"), pools(name="b")
    err, objs = a.allocate(KV, 1)
    assert b.free(objs) == L1Error.FOREIGN_OBJECT
    assert "another pool" in b.last_error
    assert a.free(objs) == L1Error.SUCCESS


def test_freed_object_views(pool):
    err, objs = pool.allocate(KV, 1)
    o = objs[0]
    kept = o.array
    kept[:] = 7
    assert pool.free(objs) == L1Error.SUCCESS
    assert not o.is_valid()
    with pytest.raises(L1Exception, match="freed"):
        o.array
    # documented: an array kept across free stays mapped; once zeroing is
    # done its bytes read as zero
    assert pool.flush(timeout=10)
    assert not kept.any()
    del kept


@pytest.mark.parametrize("dt,npdt,raw", [
    (np.float16, np.float16, False), ("fp16", np.float16, False),
    ("bf16", np.uint16, True), ("bfloat16", np.uint16, True),
    (np.float32, np.float32, False), ("float64", np.float64, False),
    (np.int8, np.int8, False), (np.uint8, np.uint8, False),
    ("int16", np.int16, False), (np.int32, np.int32, False),
    (np.int64, np.int64, False), ("fp8_e4m3", np.uint8, True),
    ("float8_e5m2", np.uint8, True), (np.bool_, np.bool_, False),
    (np.uint16, np.uint16, False), ("uint32", np.uint32, False),
    (np.dtype("<u8"), np.uint64, False), ("<f2", np.float16, False),
])
def test_dtypes(pool, dt, npdt, raw):
    lay = MemoryLayoutDesc(shapes=[(3, 5)], dtypes=[dt])
    err, objs = pool.allocate(lay, 2)
    assert err == L1Error.SUCCESS
    a = objs[0].array
    assert a.dtype == np.dtype(npdt) and a.shape == (3, 5)
    assert a.nbytes == 15 * np.dtype(npdt).itemsize
    a[...] = 1
    assert ctypes.string_at(objs[0].ptr, a.nbytes) == a.tobytes()
    assert (lay.l1_dtypes[0] in (Dtype.BF16, Dtype.FP8_E4M3, Dtype.FP8_E5M2)) == raw
    del a
    assert pool.free(objs) == L1Error.SUCCESS


def test_bad_layouts():
    with pytest.raises(ValueError):
        MemoryLayoutDesc(shapes=[(1,), (2,)], dtypes=[np.float16])
    with pytest.raises((ValueError, TypeError)):
        MemoryLayoutDesc(shapes=[(4,)], dtypes=["no-such-type"])._compile()
    with pytest.raises(ValueError):
        MemoryLayoutDesc(shapes=[(4,)], dtypes=[np.complex64])._compile()
    with pytest.raises(ValueError):
        MemoryLayoutDesc(shapes=[(1,)] * 5, dtypes=["fp16"] * 5)._compile()
    with pytest.raises(ValueError):
        MemoryLayoutDesc(shapes=[(1,) * 9], dtypes=["fp16"])._compile()
    with pytest.raises(ValueError):
        MemoryLayoutDesc(shapes=[(-1,)], dtypes=["fp16"])._compile()
    with pytest.raises(ValueError):
        MemoryLayoutDesc(shapes=[(4,)], dtypes=[np.dtype(">f2")])._compile()


def test_multi_tensor_layout(pool):
    lay = MemoryLayoutDesc(shapes=[(2, 3), [5], 7, ()],
                           dtypes=["int8", np.float32, "bf16", np.int64])
    assert lay.format() == "[2,3]:int8;[5]:fp32;[7]:bf16;[]:int64"
    offs = lay.tensor_offsets
    assert offs[0] == 0 and offs == sorted(offs)
    err, objs = pool.allocate(lay, 3)
    assert err == L1Error.SUCCESS
    o = objs[0]
    shapes = [a.shape for a in o.arrays]
    assert shapes == [(2, 3), (5,), (7,), ()]
    for a, off in zip(o.arrays, offs):
        assert a.ctypes.data == o.ptr + off
        assert off % a.itemsize == 0
    for i, a in enumerate(o.arrays):
        a[...] = i + 1
    for i, a in enumerate(o.arrays):          # tensors do not overlap
        assert (a == i + 1).all()
    assert o.byte_array.nbytes == o.size and o.size >= lay.nbytes
    assert o.byte_array.ctypes.data == o.ptr
    assert pool.free(objs) == L1Error.SUCCESS


def test_layout_value_semantics_and_parse():
    a = MemoryLayoutDesc(shapes=[(2, 32, 128)], dtypes=[np.float16])
    b = MemoryLayoutDesc(shapes=[[2, 32, 128]], dtypes=["fp16"])
    c = MemoryLayoutDesc(shapes=(2, 32, 128), dtypes="half")   # single forms
    assert a == b == c and hash(a) == hash(b)
    assert a != MemoryLayoutDesc(shapes=[(2, 32, 128)], dtypes=["bf16"])
    p = MemoryLayoutDesc.parse("[2,32,128]:fp16;[4]:int32")
    assert p.shapes == [(2, 32, 128), (4,)]
    assert p.dtypes == [np.dtype(np.float16), np.dtype(np.int32)]
    assert p.nbytes == 16384 + 16
    with pytest.raises(L1Exception):
        MemoryLayoutDesc.parse("nonsense")


def test_allocate_bytes(pool):
    err, objs = pool.allocate_bytes(10000, 2)
    assert err == L1Error.SUCCESS and objs[0].size >= 10000
    assert objs[0].array.dtype == np.uint8 and objs[0].array.shape == (10000,)
    assert pool.free(objs) == L1Error.SUCCESS


def test_config_defaults_are_the_c_defaults(monkeypatch):
    for v in ("L1ARENA_INIT_SIZE", "L1ARENA_GROW_STEP", "L1ARENA_HUGEPAGE_SIZE",
              "L1ARENA_MAX_OBJECTS", "L1ARENA_ALLOW_SHM", "L1ARENA_ZERO",
              "L1ARENA_PIN"):
        monkeypatch.delenv(v, raising=False)
    cfg = l1arena.L1MemoryManagerConfig(size_in_bytes=64 << 30, use_lazy=True)
    assert cfg.init_size_in_bytes == 20 << 30 and cfg.align_bytes == 4096
    c = cfg.to_c()
    d = _ffi.L1Config()
    _ffi.l1_config_init(ctypes.addressof(d))
    for f, _ in _ffi.L1Config._fields_:
        if f in ("size_bytes", "init_size_bytes", "align_bytes"):
            continue
        assert getattr(c, f) == getattr(d, f), f
    assert c.align_bytes in (0, 4096) and c.size_bytes == 64 << 30
    assert c.init_size_bytes == 20 << 30
    small = l1arena.L1MemoryManagerConfig(size_in_bytes=1 << 30, use_lazy=True)
    assert small.init_size_in_bytes == 1 << 30           # capped, like LMCache
    assert _ffi.l1_config_validate(ctypes.addressof(c)) == 0


def test_config_env_defaults_and_options(monkeypatch):
    monkeypatch.setenv("L1ARENA_INIT_SIZE", "64M")
    monkeypatch.setenv("L1ARENA_ALLOW_SHM", "1")
    monkeypatch.setenv("L1ARENA_PIN", "off")
    cfg = l1arena.L1MemoryManagerConfig(size_in_bytes="1G", use_lazy=True)
    assert cfg.size_in_bytes == 1 << 30
    assert cfg.init_size_in_bytes == 64 << 20 and cfg.allow_shm is True
    assert cfg.to_c().pin == _ffi.L1_PIN_OFF
    # explicit values win over the environment
    cfg = l1arena.L1MemoryManagerConfig(size_in_bytes=1 << 30, use_lazy=True,
                                        init_size_in_bytes=128 << 20,
                                        allow_shm=False, pin="defer",
                                        zero_method="memset")
    c = cfg.to_c()
    assert (c.init_size_bytes, c.allow_shm, c.pin, c.zero_method) == (
        128 << 20, 0, _ffi.L1_PIN_DEFER, _ffi.L1_ZERO_MEMSET)
    with pytest.raises(ValueError):
        l1arena.L1MemoryManagerConfig(size_in_bytes=1, use_lazy=False, pin="sometimes")


def test_create_errors(pools):
    p = pools.path()
    m = L1MemoryManager(config(p))
    with pytest.raises(L1Exception) as ei:       # exists, another size
        L1MemoryManager(config(p, size=32 * MiB))
    assert ei.value.error == L1Error.EXISTS and "size_in_bytes" in ei.value.message
    m.close()
    with pytest.raises(L1Exception) as ei:
        L1MemoryManager(config(pools.path(), size=0))
    assert ei.value.error == L1Error.INVALID_ARGUMENT
    assert "size" in str(ei.value)
    with pytest.raises(L1Exception) as ei:
        L1MemoryManager.attach(pool_path("absent"))
    assert ei.value.error == L1Error.NOT_FOUND


def test_attach_by_path(pools):
    m = pools()
    err, objs = m.allocate(KV, 1)
    objs[0].array[...] = 5
    assert m.publish(objs[0], "attach-key") == L1Error.SUCCESS
    other = L1MemoryManager.attach(m.path)
    try:
        assert other.pool_id == m.pool_id and other.path == m.path
        o = other.lookup("attach-key")
        assert o.id == objs[0].id and o.offset == objs[0].offset
        assert o.ptr != objs[0].ptr                # its own mapping
        assert (o.array == 5).all() and not o.array.flags.writeable
        assert o.layout == KV
        assert other.get_memory_usage() == m.get_memory_usage()
        # objects of the same pool may be freed through either manager
        del o
        assert other.free(objs) == L1Error.SUCCESS
    finally:
        other.close()
    ro = L1MemoryManager.attach(m.path, readonly=True)
    try:
        assert not ro.get_vm_space_info().array.flags.writeable
    finally:
        ro.close()


def test_read_only_attach(pool):
    """read_only=True: reads work without the pool lock, every write is
    NOT_PERMITTED with a sentence, and the pool is unchanged."""
    err, objs = pool.allocate(KV, 2)
    assert err == L1Error.SUCCESS
    objs[0].array[...] = 7
    assert pool.publish(objs[0], "ro-key") == L1Error.SUCCESS
    used = pool.get_memory_usage()
    ro = L1MemoryManager.attach(pool.path, read_only=True)
    try:
        r = ro.lookup("ro-key")
        assert r is not None and r.id == objs[0].id and (r.array == 7).all()
        assert not r.array.flags.writeable
        err, got = ro.allocate(KV, 1)
        assert err == L1Error.NOT_PERMITTED and not got
        assert "read-only" in ro.last_error
        assert ro.free([objs[1]]) == L1Error.NOT_PERMITTED
        assert ro.publish(objs[1], "nope") == L1Error.NOT_PERMITTED
        del r
    finally:
        ro.close()
    assert pool.get_memory_usage() == used
    assert pool.lookup("nope") is None
    assert pool.free(objs) == L1Error.SUCCESS


def test_publish_lookup_hold(pool):
    err, objs = pool.allocate(KV, 2)
    w = objs[0]
    w.array[...] = np.arange(2 * 32 * 128).reshape(2, 32, 128)
    assert pool.publish(w, "k1") == L1Error.SUCCESS
    assert pool.publish(objs[1], "k1") == L1Error.EXISTS
    assert pool.publish(w, "k2") != L1Error.SUCCESS      # already published
    assert pool.publish(objs[1], "x" * 200) == L1Error.INVALID_ARGUMENT
    assert pool.lookup("nope") is None
    r = pool.lookup("k1")
    assert r.id == w.id and (r.array == w.array).all()
    with pytest.raises(ValueError):
        r.array[0, 0, 0] = 1                            # published: read-only
    info = pool.info(w)
    assert info["state_name"].lower().startswith("pub") and info["key"] == "k1"
    assert pool.get(w.id).offset == w.offset
    with pool.hold("k1") as h:
        assert h.held and pool.info(h)["holds"] >= 1
        snapshot = h.array.copy()
        # freed while held: bytes stay until the last hold goes
        assert pool.free([w]) == L1Error.SUCCESS
        assert pool.flush(timeout=0.5) in (True, False)
        assert (h.array == snapshot).all()
    assert not h.held
    with pytest.raises(L1Exception, match="released"):
        h.array
    with pytest.raises(L1Exception) as ei:
        pool.hold("nope")
    assert ei.value.error == L1Error.KEY_NOT_EXIST
    with pool.hold(objs[1].id) as h2:                    # by id
        assert h2.id == objs[1].id
    with pool.hold(objs[1]) as h3:                       # by MemoryObj
        assert h3.id == objs[1].id
    assert pool.free(objs[1:]) == L1Error.SUCCESS
    assert pool.flush(timeout=10)
    assert pool.get_memory_usage()[0] == 0
    assert pool.memcheck(), pool.last_memcheck_report


def test_objects_usage_clients_gc_flush(pool):
    err, objs = pool.allocate(KV, 3)
    ids = {o["obj"]["id"] for o in pool.objects()}
    assert {o.id for o in objs} <= ids
    u = pool.usage()
    assert u["used_bytes"] == 3 * 16384 and u["backing"] in ("hugetlbfs", "shm")
    cl = pool.clients()
    assert any(c["pid"] == __import__("os").getpid() for c in cl)
    assert isinstance(pool.gc(), dict)
    assert pool.free(objs) == L1Error.SUCCESS
    assert pool.flush() is True
    assert pool.usage()["dirty_bytes"] == 0
    assert pool.memcheck_report()[0] == 0


def test_vm_space(pool):
    vm = pool.get_vm_space_info()
    assert vm.array.dtype == np.uint8 and vm.array.size == vm.size
    assert vm.array.ctypes.data == vm.base
    assert vm.data_offset + vm.data_size <= vm.size
    assert vm.path == pool.path and vm.pool_id == pool.pool_id
    err, objs = pool.allocate(KV, 1)
    objs[0].byte_array[:4] = [1, 2, 3, 4]
    assert list(vm.array[objs[0].offset:objs[0].offset + 4]) == [1, 2, 3, 4]
    d = pool.get_l1_memory_desc()
    assert d.ptr == vm.base + vm.data_offset and d.align_bytes == 4096
    assert d.size == vm.data_size == 64 * MiB
    del vm
    assert pool.free(objs) == L1Error.SUCCESS


def test_l1error_and_exception():
    assert L1Error.from_code(0) is L1Error.SUCCESS
    assert L1Error.from_code(-errno.ENOMEM) is L1Error.OUT_OF_MEMORY
    assert L1Error.from_code(-errno.EALREADY) is L1Error.DOUBLE_FREE
    assert L1Error.from_code(-9999) is L1Error.UNKNOWN
    assert L1Error.from_code(-errno.ENOENT, key=True) is L1Error.KEY_NOT_EXIST
    assert L1Error.KEY_NOT_EXIST.errno == errno.ENOENT
    assert L1Error.OUT_OF_MEMORY.errno == errno.ENOMEM
    assert l1arena.strerror(L1Error.SUCCESS)
    e = L1Exception(-errno.EBUSY, "busy here")
    assert e.error is L1Error.BUSY and "busy here" in str(e)


def test_example_style_context_manager(pools):
    p = pools.path()
    with L1MemoryManager(config(p)) as m:
        err, objs = m.allocate(KV, 2)
        m.free(objs)
    assert m.closed
    with pytest.raises(L1Exception, match="closed"):
        m.allocate(KV, 1)
    remove_pool(p)


def test_duck_typed_layout_and_huge_count(pool):
    class LMCacheLayout:                    # like lmcache's frozen dataclass
        def __init__(self, shapes, dtypes):
            self.shapes, self.dtypes = shapes, dtypes
        __hash__ = None

    lay = LMCacheLayout([(2, 32, 128)], ["float16"])
    err, objs = pool.allocate(lay, 2)
    assert err == L1Error.SUCCESS and objs[0].layout == KV
    assert pool.allocate(lay, 1)[1][0].layout is objs[0].layout   # cached
    with pytest.raises(TypeError):
        pool.allocate(object(), 1)
    err, none = pool.allocate(KV, 1 << 40)
    assert err == L1Error.OUT_OF_MEMORY and none == []     # as LMCache
    assert "object table" in pool.last_error
    assert pool.last_error_code == L1Error.OUT_OF_OBJECTS
    for o in pool.objects():
        pool.free([pool.get(o["obj"]["id"])])
    assert pool.get_memory_usage()[0] == 0


def test_create_or_attach(pools):
    p = pools.path()
    a = L1MemoryManager.create_or_attach(config(p))
    b = L1MemoryManager.create_or_attach(config(p))
    try:
        assert a.pool_id == b.pool_id
        err, objs = b.allocate(KV, 1)
        assert a.get_memory_usage()[0] == 16384
        assert b.free(objs) == L1Error.SUCCESS
    finally:
        b.close()
        a.close()
