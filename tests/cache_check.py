#!/usr/bin/python3
"""An independent check of the streaming KV cache through the C ABI.

Streams of random chunks are appended and attended (`swa_kv_cache_append` then
`swa_kv_cache_attend`, at most max_chunk queries a call), several streams interleaved,
with the ring wrapping many times; a stream is saved and restored half way. Each attend
must equal the contract's attention of its queries against every key the stream has
seen (docs/ATTENTION.md, bottom-right aligned), computed by contract_check.reference
in numpy float64: nothing of libswa's forward is used as the reference.
Usage: cache_check.py path/to/libswa.so [layers [seed]]
"""
import ctypes as C
import os
import sys
import tempfile

import numpy as np

from contract_check import (F32, TOL_FWD, Params, command_line, from_storage, make_tensor, params, reference,
                            rel_error, to_storage)


class CacheConfig(C.Structure):
    _fields_ = [("dtype", C.c_int), ("num_heads", C.c_int64), ("num_kv_heads", C.c_int64),
                ("head_dim", C.c_int64), ("attention", Params), ("max_chunk", C.c_int64),
                ("max_positions", C.c_int64), ("page_tokens", C.c_int64), ("position_mode", C.c_int),
                ("rope", C.c_int), ("rope_theta", C.c_float), ("rope_dims", C.c_int64)]


def random_layer(rng):
    hkv = int(rng.choice([1, 2]))
    hq = hkv * int(rng.choice([1, 2, 4]))
    cfg = {"hq": hq, "hkv": hkv, "dim": int(rng.choice([4, 16, 24])), "dtype": int(rng.choice([F32, F32, 1, 2])),
           "max_chunk": int(rng.integers(1, 9))}
    left = int(rng.integers(0, 12))
    right = int(rng.choice([0, 0, 1, 3]))
    cfg["window"] = (left, right)
    cfg["per_head"] = rng.random() < 0.3
    cfg["left"] = [int(rng.integers(0, 12)) for _ in range(hq)] if cfg["per_head"] else [left] * hq
    cfg["right"] = [right] * hq
    cfg["causal"] = int(rng.random() < 0.3)
    cfg["scale"] = 0.0
    cfg["softcap"] = 0.0 if rng.random() < 0.7 else 2.5
    cfg["alibi"] = None if rng.random() < 0.7 else [float(np.float32(x)) for x in rng.uniform(0, 0.4, hq)]
    cfg["sinks"] = 0 if rng.random() < 0.6 else int(rng.integers(1, 4))
    cfg["sink_logits"] = None if rng.random() < 0.7 else [float(np.float32(x)) for x in rng.uniform(-1, 1, hq)]
    if rng.random() < 0.25:
        cfg["chunk"] = int(rng.integers(2, 9))
        cfg["overlap"] = int(rng.integers(0, cfg["chunk"] // 2 + 1))
    else:
        cfg["chunk"], cfg["overlap"] = 0, 0
    cfg["globals"] = sorted(set(int(x) for x in rng.integers(0, 30, 2))) if rng.random() < 0.15 else []
    return cfg


def dense(storage, dtype, shape):
    b, l, h, d = shape
    return make_tensor(storage, dtype, shape, [l * h * d, h * d, d, 1])


def check_layer(lib, rng, index, tmpdir):
    cfg = random_layer(rng)
    hq, hkv, dim, dt = cfg["hq"], cfg["hkv"], cfg["dim"], cfg["dtype"]
    keep = []
    config = CacheConfig()
    lib.swa_kv_cache_config_init(C.byref(config))
    config.dtype, config.num_heads, config.num_kv_heads, config.head_dim = dt, hq, hkv, dim
    config.attention = params(dict(cfg, varlen=False, threads=0), keep)  # a cache takes no cu_seqlens
    config.max_chunk = cfg["max_chunk"]
    cache = C.c_void_p()
    if lib.swa_kv_cache_create(C.byref(config), C.byref(cache)) != 0:
        return [f"create failed: {lib.swa_last_error().decode()}"], cfg
    problems = []
    streams = {sid: {"k": [], "v": []} for sid in (3, 11)}
    for sid in streams:
        assert lib.swa_kv_cache_add_sequence(cache, C.c_int64(sid)) == 0
    saved_at = int(rng.integers(5, 40))
    steps = 0
    while steps < 70:
        sid = int(rng.choice(list(streams)))
        s = streams[sid]
        t = int(rng.integers(1, cfg["max_chunk"] + 1))
        q_store, q = to_storage(rng.standard_normal(t * hq * dim), dt)
        k_store, k = to_storage(rng.standard_normal(t * hkv * dim), dt)
        v_store, v = to_storage(rng.standard_normal(t * hkv * dim), dt)
        ids = (C.c_int64 * 1)(sid)
        kt, vt = dense(k_store, dt, (1, t, hkv, dim)), dense(v_store, dt, (1, t, hkv, dim))
        if lib.swa_kv_cache_append(cache, ids, 1, C.byref(kt), C.byref(vt), None) != 0:
            problems.append(f"append failed: {lib.swa_last_error().decode()}")
            break
        s["k"].append(k.reshape(t, hkv, dim))
        s["v"].append(v.reshape(t, hkv, dim))
        out_store, _ = to_storage(np.zeros(t * hq * dim), dt)
        lse = np.zeros(hq * t, dtype=np.float32)
        qt, ot = dense(q_store, dt, (1, t, hq, dim)), dense(out_store, dt, (1, t, hq, dim))
        if lib.swa_kv_cache_attend(cache, ids, 1, C.byref(qt), None, C.byref(ot),
                                   lse.ctypes.data_as(C.POINTER(C.c_float))) != 0:
            problems.append(f"attend failed: {lib.swa_last_error().decode()}")
            break
        keys, values = np.concatenate(s["k"]), np.concatenate(s["v"])
        n = keys.shape[0]
        rcfg = dict(cfg, seqs=[(0, t, 0, n)])
        want_out, want_lse, *_ = reference(q.reshape(1, t, hq, dim), keys[None], values[None],
                                           np.zeros((1, t, hq, dim)), rcfg)
        got = from_storage(out_store, dt).reshape(1, t, hq, dim)
        e = rel_error(got, want_out)
        lse_ok = np.allclose(lse.reshape(1, hq, t), want_lse, rtol=1e-4, atol=1e-4)
        if not e <= TOL_FWD[dt] or not lse_ok:
            problems.append(f"step {steps} (stream {sid}, {n} positions, {t} queries): out error {e:.3g}, "
                            f"lse {'ok' if lse_ok else 'differs'}")
            break
        steps += 1
        if steps == saved_at:  # save, destroy, restore: the streams go on identically
            path = os.path.join(tmpdir, f"cache{index}.bin").encode()
            if lib.swa_kv_cache_save(cache, path) != 0:
                problems.append(f"save failed: {lib.swa_last_error().decode()}")
                break
            lib.swa_kv_cache_destroy(cache)
            cache = C.c_void_p()
            if lib.swa_kv_cache_load(path, C.byref(cache)) != 0:
                problems.append(f"load failed: {lib.swa_last_error().decode()}")
                break
    lib.swa_kv_cache_destroy(cache)
    return problems, cfg


def main():
    lib, layers, rng = command_line(60, 5)
    lib.swa_kv_cache_destroy.argtypes = [C.c_void_p]
    for name in ("swa_kv_cache_add_sequence",):
        getattr(lib, name).argtypes = [C.c_void_p, C.c_int64]
    lib.swa_kv_cache_append.argtypes = [C.c_void_p, C.c_void_p, C.c_int64, C.c_void_p, C.c_void_p, C.c_void_p]
    lib.swa_kv_cache_attend.argtypes = [C.c_void_p, C.c_void_p, C.c_int64, C.c_void_p, C.c_void_p, C.c_void_p,
                                        C.c_void_p]
    lib.swa_kv_cache_save.argtypes = [C.c_void_p, C.c_char_p]
    lib.swa_kv_cache_load.argtypes = [C.c_char_p, C.c_void_p]
    failures = 0
    with tempfile.TemporaryDirectory() as tmpdir:
        for n in range(layers):
            problems, cfg = check_layer(lib, rng, n, tmpdir)
            if problems:
                failures += 1
                print(f"layer {n} FAILED: {'; '.join(problems)}\n  {cfg}")
    print(f"{layers - failures}/{layers} cache layers agree with the contract over their streams")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
