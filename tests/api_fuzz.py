#!/usr/bin/python3
"""Bad input through the C ABI: random valid problems, each spoiled by one invalid change.

Every spoiled call must return a negative code with a message from swa_last_error(),
leave every output byte as it was, and not crash. The changes are ones the contract
(docs/ATTENTION.md) names as invalid: NULL pointers, shapes, strides, dtypes, devices,
GQA divisibility, cu_seqlens, window and rule values, head_dim limits, sizes whose
products overflow. Usage: api_fuzz.py path/to/libswa.so [calls [seed]]
"""
import ctypes as C
import sys

import numpy as np

from contract_check import Strided, command_line, params, random_config

BIG = 1 << 62


def spoil(rng, cfg, tensors, p, keep):
    """Applies one invalid change to the call; returns its name."""
    name = rng.choice(["null_tensor", "null_data", "dtype_mix", "dtype_bad", "device", "shape_neg",
                       "shape_mismatch", "head_dim_zero", "head_dim_big", "last_stride", "stride_neg",
                       "gqa", "window_left", "window_right", "head_window", "chunk_neg", "overlap_neg",
                       "sinks_neg", "globals_null", "globals_unsorted", "globals_neg", "threads_neg",
                       "overflow", "cu_one_sided", "cu_decreasing", "cu_total", "cu_batch", "num_seqs"])
    which = rng.choice(list(tensors))
    t = tensors[which]
    if name == "null_tensor":
        tensors[which] = None
    elif name == "null_data":
        if all(t.shape[a] > 0 for a in range(4)):
            t.data = None
        else:
            t.dtype = 9
    elif name == "dtype_mix":
        t.dtype = (t.dtype + 1) % 3
    elif name == "dtype_bad":
        t.dtype = int(rng.choice([-1, 3, 100]))
    elif name == "device":
        t.device = int(rng.choice([1, 2, -1]))
    elif name == "shape_neg":
        t.shape[int(rng.integers(0, 4))] = -int(rng.integers(1, 5))
    elif name == "shape_mismatch":
        axis = int(rng.choice([0, 3]))  # batch and head_dim must agree everywhere
        t.shape[axis] += 1
    elif name == "head_dim_zero":
        for u in tensors.values():
            u.shape[3] = 0
        if all(u.shape[1] == 0 or u.shape[0] == 0 for u in tensors.values()):
            t.dtype = 9  # nothing to compute; make it invalid another way
    elif name == "head_dim_big":
        for u in tensors.values():
            u.shape[3] = 100000
            u.data = None
    elif name == "last_stride":
        t.stride[3] = int(rng.choice([0, 2, -1]))
    elif name == "stride_neg":
        t.stride[int(rng.integers(0, 3))] = -int(rng.integers(1, 100))
    elif name == "gqa":
        for key in ("k", "v", "dk", "dv"):
            if key in tensors:
                tensors[key].shape[2] = cfg["hq"] + 1
    elif name == "window_left":
        p.window_left = -int(rng.integers(2, 100))
    elif name == "window_right":
        p.window_right = -int(rng.integers(2, 100))
    elif name == "head_window":
        bad = [-int(rng.integers(2, 9))] * cfg["hq"]
        keep.append((C.c_int64 * cfg["hq"])(*bad))
        p.head_window_left = keep[-1]
    elif name == "chunk_neg":
        p.chunk_size = -int(rng.integers(1, 9))
    elif name == "overlap_neg":
        p.chunk_size, p.chunk_overlap = 4, -int(rng.integers(1, 9))
    elif name == "sinks_neg":
        p.sink_tokens = -int(rng.integers(1, 9))
    elif name == "globals_null":
        p.global_tokens, p.num_global_tokens = None, int(rng.integers(1, 5))
    elif name == "globals_unsorted":
        keep.append((C.c_int64 * 3)(5, 2, 9))
        p.global_tokens, p.num_global_tokens = keep[-1], 3
    elif name == "globals_neg":
        keep.append((C.c_int64 * 2)(-3, 2))
        p.global_tokens, p.num_global_tokens = keep[-1], 2
    elif name == "threads_neg":
        p.num_threads = -int(rng.integers(1, 9))
    elif name == "overflow":
        for u in tensors.values():
            u.shape[0], u.shape[1] = BIG, BIG
            u.data = None
    elif name.startswith("cu_") or name == "num_seqs":
        total_q, total_k = tensors["q"].shape[1], tensors["k"].shape[1]
        cq, ck = [0, total_q], [0, total_k]
        if name == "cu_decreasing":
            cq = [0, total_q + 1, total_q]
        elif name == "cu_total":
            ck = [0, total_k + 1]
        cq_arr, ck_arr = (C.c_int32 * len(cq))(*cq), (C.c_int32 * len(ck))(*ck)
        keep.extend([cq_arr, ck_arr])
        p.cu_seqlens_q, p.cu_seqlens_k = cq_arr, ck_arr
        p.num_seqs = min(len(cq), len(ck)) - 1
        if name == "cu_one_sided":
            p.cu_seqlens_k = None
        elif name == "cu_batch":
            for u in tensors.values():
                u.shape[0] = 2
                u.data = None
        elif name == "num_seqs":
            p.num_seqs = int(rng.choice([0, -1, 5]))
    return name


def fuzz_one(lib, rng, backward):
    cfg = random_config(rng)
    cfg["varlen"], cfg["batch"] = False, 1
    cfg["seqs"] = [(0, cfg["total_q"], 0, cfg["total_k"])]
    b, hq, hkv, d, dt = 1, cfg["hq"], cfg["hkv"], cfg["dim"], cfg["dtype"]
    shapes = {"q": (b, cfg["total_q"], hq, d), "k": (b, cfg["total_k"], hkv, d), "v": (b, cfg["total_k"], hkv, d)}
    if backward:
        shapes.update({"out": shapes["q"], "dout": shapes["q"], "dq": shapes["q"], "dk": shapes["k"],
                       "dv": shapes["v"]})
    else:
        shapes["out"] = shapes["q"]
    bufs = {key: Strided(rng, s, dt) for key, s in shapes.items()}
    tensors = {key: s.tensor for key, s in bufs.items()}
    keep = []
    p = params(cfg, keep)
    lse = np.full(b * hq * cfg["total_q"], 3.0, dtype=np.float32)
    dsink = np.full(hq, 3.0, dtype=np.float32)
    outputs = ["dq", "dk", "dv"] if backward else ["out"]
    before = {key: bufs[key].storage.copy() for key in outputs}
    lse_before, dsink_before = lse.copy(), dsink.copy()
    change = spoil(rng, cfg, tensors, p, keep)
    ref = lambda key: C.byref(tensors[key]) if tensors[key] is not None else None
    fptr = lambda a: a.ctypes.data_as(C.POINTER(C.c_float))
    if backward:
        rc = lib.swa_attention_backward(C.byref(p), ref("q"), ref("k"), ref("v"), ref("out"), fptr(lse),
                                        ref("dout"), ref("dq"), ref("dk"), ref("dv"), fptr(dsink))
    else:
        rc = lib.swa_attention_forward(C.byref(p), ref("q"), ref("k"), ref("v"), ref("out"), fptr(lse))
    problems = []
    if rc >= 0:
        problems.append(f"accepted (rc {rc})")
    elif not lib.swa_last_error():
        problems.append("no error message")
    written = [key for key in outputs if not np.array_equal(before[key], bufs[key].storage)]
    if not backward and not np.array_equal(lse, lse_before):
        written.append("lse")
    if backward and not np.array_equal(dsink, dsink_before):
        written.append("dsink")
    if rc < 0 and written:
        problems.append(f"wrote {written} although it failed")
    return change, problems


def main():
    lib, calls, rng = command_line(2000, 7)
    failures, seen = 0, set()
    for n in range(calls):
        change, problems = fuzz_one(lib, rng, backward=bool(n % 2))
        seen.add(change)
        if problems:
            failures += 1
            print(f"call {n} ({'backward' if n % 2 else 'forward'}, {change}): {'; '.join(problems)}")
    print(f"{calls - failures}/{calls} spoiled calls rejected cleanly ({len(seen)} kinds of change)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
