#!/usr/bin/python3
"""An independent check of libswa against docs/ATTENTION.md, through the C ABI.

The rule, scores, softmax, lse and gradients are written here again from the contract
text, in numpy float64 with dense per-row loops, sharing no code with the C++ oracle.
Random small problems cover every form of the rule (windows per head, causal,
chunk + overlap, sinks, learned sink logits, global tokens, ALiBi, softcap, GQA/MQA,
varlen with empty sequences, Lq != Lk, strided views) in f32, bf16 and f16, forward and
backward. Usage: contract_check.py path/to/libswa.so [cases [seed]]
"""
import ctypes as C
import math
import sys

import numpy as np

F32, BF16, F16 = 0, 1, 2


class Tensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int), ("device", C.c_int),
                ("shape", C.c_int64 * 4), ("stride", C.c_int64 * 4)]


class Params(C.Structure):
    _fields_ = [("window_left", C.c_int64), ("window_right", C.c_int64),
                ("head_window_left", C.POINTER(C.c_int64)), ("head_window_right", C.POINTER(C.c_int64)),
                ("causal", C.c_int), ("scale", C.c_float), ("softcap", C.c_float),
                ("alibi_slopes", C.POINTER(C.c_float)), ("sink_tokens", C.c_int64),
                ("sink_logits", C.POINTER(C.c_float)), ("chunk_size", C.c_int64),
                ("chunk_overlap", C.c_int64), ("global_tokens", C.POINTER(C.c_int64)),
                ("num_global_tokens", C.c_int64), ("cu_seqlens_q", C.POINTER(C.c_int32)),
                ("cu_seqlens_k", C.POINTER(C.c_int32)), ("num_seqs", C.c_int64), ("num_threads", C.c_int)]


def to_storage(x, dtype):
    """float64 array -> (storage array in the dtype, its exact float64 value)."""
    if dtype == F32:
        s = x.astype(np.float32)
        return s, s.astype(np.float64)
    if dtype == F16:
        s = x.astype(np.float16)
        return s.view(np.uint16), s.astype(np.float64)
    f = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((f + 0x7FFF + ((f >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even
    value = (rounded.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return rounded, value


def from_storage(s, dtype):
    if dtype == F32:
        return s.astype(np.float64)
    if dtype == F16:
        return s.view(np.float16).astype(np.float64)
    return (s.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def make_tensor(storage, dtype, view_shape, strides):
    t = Tensor()
    t.data = storage.ctypes.data if storage.size else None
    t.dtype, t.device = dtype, 0
    for a in range(4):
        t.shape[a], t.stride[a] = view_shape[a], strides[a]
    return t


class Strided:
    """A [B, L, H, D] view inside a larger buffer (padding in L, H and D strides)."""

    def __init__(self, rng, shape, dtype, values=None, padded=False):
        b, l, h, d = shape
        pad_h, pad_d = (rng.integers(0, 3), rng.integers(0, 5)) if padded else (0, 0)
        self.strides = [0, 0, 0, 1]
        self.strides[2] = d + pad_d
        self.strides[1] = (h + pad_h) * self.strides[2]
        self.strides[0] = l * self.strides[1] + (rng.integers(0, 7) if padded else 0)
        self.size = max(1, b * self.strides[0])
        self.shape, self.dtype = shape, dtype
        base = rng.standard_normal(self.size) if values is None else np.full(self.size, values)
        self.storage, _ = to_storage(base, dtype)
        self.tensor = make_tensor(self.storage, dtype, shape, self.strides)

    def value(self):
        """The view's elements as float64 [B, L, H, D]."""
        flat = from_storage(self.storage, self.dtype)
        b, l, h, d = self.shape
        out = np.zeros(self.shape)
        for bi in range(b):
            for li in range(l):
                for hi in range(h):
                    o = bi * self.strides[0] + li * self.strides[1] + hi * self.strides[2]
                    out[bi, li, hi] = flat[o:o + d]
        return out


def visible(i, j, h, lq, lk, cfg):
    p = i + (lk - lq)
    left, right = cfg["left"][h], cfg["right"][h]
    if cfg["chunk"] > 0:
        c = p // cfg["chunk"]  # floor, also for negative p
        local = c * cfg["chunk"] - cfg["overlap"] <= j <= (c + 1) * cfg["chunk"] - 1 + cfg["overlap"]
    else:
        local = (left < 0 or j >= p - left) and (right < 0 or j <= p + right)
    extra = j < cfg["sinks"] or j in cfg["globals"] or p in cfg["globals"]
    return (local or extra) and (not cfg["causal"] or j <= p) and 0 <= j < lk


def reference(q, k, v, dout, cfg):
    """Forward (out, lse) and backward (dq, dk, dv, dsink) of one packed problem, float64,
    and for each gradient the same sums taken over absolute values: the scale against which
    its rounding error is measured (a gradient can cancel to nearly 0, e.g. dq when a row
    sees one key, while its terms do not)."""
    b_count, _, hq, dim = q.shape
    hkv = k.shape[2]
    group = hq // hkv
    scale = cfg["scale"] if cfg["scale"] != 0 else 1.0 / math.sqrt(dim)
    out, lse = np.zeros(q.shape), np.zeros((b_count, hq, q.shape[1]))
    dq, dk, dv = np.zeros(q.shape), np.zeros(k.shape), np.zeros(v.shape)
    dsink = np.zeros(hq)
    mag = {"dq": np.zeros(q.shape), "dk": np.zeros(k.shape), "dsink": np.zeros(hq)}
    for b in range(b_count):
        for (q0, lq, k0, lk) in cfg["seqs"]:
            for h in range(hq):
                kh = h // group
                sink = cfg["sink_logits"][h] if cfg["sink_logits"] is not None else None
                for i in range(lq):
                    p = i + lk - lq
                    js = [j for j in range(lk) if visible(i, j, h, lq, lk, cfg)]
                    if not js:
                        lse[b, h, q0 + i] = sink if sink is not None else math.inf
                        continue
                    kk, vv = k[b, k0 + np.array(js), kh], v[b, k0 + np.array(js), kh]
                    raw = scale * (kk @ q[b, q0 + i, h])
                    s = raw.copy()
                    if cfg["softcap"] > 0:
                        s = cfg["softcap"] * np.tanh(raw / cfg["softcap"])
                    if cfg["alibi"] is not None:
                        s = s - cfg["alibi"][h] * np.abs(p - np.array(js))
                    m = max(s.max(), sink if sink is not None else -math.inf)
                    denom = np.exp(s - m).sum() + (math.exp(sink - m) if sink is not None else 0.0)
                    row_lse = m + math.log(denom)
                    prob = np.exp(s - row_lse)
                    o = prob @ vv
                    out[b, q0 + i, h], lse[b, h, q0 + i] = o, row_lse
                    g = dout[b, q0 + i, h]
                    dp = vv @ g
                    delta = g @ o
                    ds = prob * (dp - delta)
                    ds_mag = prob * (np.abs(dp) + abs(delta))
                    if cfg["softcap"] > 0:
                        ds = ds * (1.0 - np.tanh(raw / cfg["softcap"]) ** 2)
                    mag["dq"][b, q0 + i, h] += scale * (ds_mag @ np.abs(kk))
                    mag["dk"][b, k0 + np.array(js), kh] += scale * np.outer(ds_mag, np.abs(q[b, q0 + i, h]))
                    dq[b, q0 + i, h] += scale * (ds @ kk)
                    dk[b, k0 + np.array(js), kh] += scale * np.outer(ds, q[b, q0 + i, h])
                    dv[b, k0 + np.array(js), kh] += np.outer(prob, g)
                    if sink is not None:
                        dsink[h] -= math.exp(sink - row_lse) * delta
                        mag["dsink"][h] += math.exp(sink - row_lse) * abs(delta)
    mag["dv"] = np.abs(dv)
    return out, lse, dq, dk, dv, dsink, mag


def random_config(rng):
    hkv = int(rng.choice([1, 2, 3]))
    hq = hkv * int(rng.choice([1, 2, 4]))
    dim = int(rng.choice([1, 3, 8, 16, 33]))
    varlen = rng.random() < 0.3
    if varlen:
        n = int(rng.integers(1, 4))
        lens_q = [int(rng.integers(0, 12)) for _ in range(n)]
        lens_k = [int(rng.integers(0, 12)) if rng.random() < 0.5 else lq for lq in lens_q]
        batch, seqs = 1, []
        q0 = k0 = 0
        for lq, lk in zip(lens_q, lens_k):
            seqs.append((q0, lq, k0, lk))
            q0, k0 = q0 + lq, k0 + lk
        total_q, total_k = q0, k0
    else:
        batch = int(rng.integers(1, 3))
        total_q = int(rng.integers(1, 20))
        total_k = total_q if rng.random() < 0.5 else int(rng.integers(1, 20))
        seqs = [(0, total_q, 0, total_k)]
    longest = max(1, max(s[3] for s in seqs))
    edge = [0, 1, 2, longest - 1, longest, longest + 1, -1, int(rng.integers(0, longest + 2))]
    cfg = {"hq": hq, "hkv": hkv, "dim": dim, "batch": batch, "seqs": seqs, "varlen": varlen,
           "total_q": total_q, "total_k": total_k}
    cfg["window"] = (int(rng.choice(edge)), int(rng.choice(edge)))
    cfg["per_head"] = rng.random() < 0.3
    if cfg["per_head"]:
        cfg["left"] = [int(rng.choice(edge)) for _ in range(hq)]
        cfg["right"] = [int(rng.choice(edge)) for _ in range(hq)]
    else:
        cfg["left"], cfg["right"] = [cfg["window"][0]] * hq, [cfg["window"][1]] * hq
    cfg["causal"] = int(rng.random() < 0.4)
    cfg["scale"] = 0.0 if rng.random() < 0.6 else float(np.float32(rng.uniform(0.05, 1.0)))
    cfg["softcap"] = 0.0 if rng.random() < 0.7 else float(np.float32(rng.uniform(0.5, 5.0)))
    cfg["alibi"] = None if rng.random() < 0.7 else [float(np.float32(x)) for x in rng.uniform(0, 0.5, hq)]
    cfg["sinks"] = 0 if rng.random() < 0.7 else int(rng.integers(1, 4))
    cfg["sink_logits"] = None if rng.random() < 0.6 else [float(np.float32(x)) for x in rng.uniform(-2, 2, hq)]
    if rng.random() < 0.3:
        cfg["chunk"] = int(rng.integers(1, 8))
        cfg["overlap"] = int(rng.integers(0, cfg["chunk"] + 1))
    else:
        cfg["chunk"], cfg["overlap"] = 0, 0
    cfg["globals"] = sorted(set(int(x) for x in rng.integers(0, longest + 1, int(rng.integers(1, 4))))) \
        if rng.random() < 0.25 else []
    cfg["dtype"] = int(rng.choice([F32, F32, BF16, F16]))
    cfg["padded"] = rng.random() < 0.4
    cfg["threads"] = int(rng.integers(0, 4))
    return cfg


def params(cfg, keep):
    p = Params()
    p.window_left, p.window_right = cfg["window"]
    if cfg["per_head"]:
        keep.append((C.c_int64 * cfg["hq"])(*cfg["left"]))
        keep.append((C.c_int64 * cfg["hq"])(*cfg["right"]))
        p.head_window_left, p.head_window_right = keep[-2], keep[-1]
    p.causal, p.scale, p.softcap = cfg["causal"], cfg["scale"], cfg["softcap"]
    if cfg["alibi"] is not None:
        keep.append((C.c_float * cfg["hq"])(*cfg["alibi"]))
        p.alibi_slopes = keep[-1]
    p.sink_tokens = cfg["sinks"]
    if cfg["sink_logits"] is not None:
        keep.append((C.c_float * cfg["hq"])(*cfg["sink_logits"]))
        p.sink_logits = keep[-1]
    p.chunk_size, p.chunk_overlap = cfg["chunk"], cfg["overlap"]
    if cfg["globals"]:
        keep.append((C.c_int64 * len(cfg["globals"]))(*cfg["globals"]))
        p.global_tokens, p.num_global_tokens = keep[-1], len(cfg["globals"])
    if cfg["varlen"]:
        cq = [0] + [s[0] + s[1] for s in cfg["seqs"]]
        ck = [0] + [s[2] + s[3] for s in cfg["seqs"]]
        keep.append((C.c_int32 * len(cq))(*cq))
        keep.append((C.c_int32 * len(ck))(*ck))
        p.cu_seqlens_q, p.cu_seqlens_k, p.num_seqs = keep[-2], keep[-1], len(cfg["seqs"])
    p.num_threads = cfg["threads"]
    return p


def rel_error(got, want, magnitude=None):
    """Largest error over the largest magnitude of the tensor (of its terms, if given)."""
    scale = np.abs(want if magnitude is None else magnitude).max(initial=0.0)
    return np.abs(got - want).max(initial=0.0) / max(scale, 1e-6)


TOL_FWD = {F32: 2e-5, BF16: 1.6e-2, F16: 2e-3}
TOL_BWD = {F32: 1e-4, BF16: 3e-2, F16: 3e-3}


def check_case(lib, rng, index):
    cfg = random_config(rng)
    b, hq, hkv, dim, dt = cfg["batch"], cfg["hq"], cfg["hkv"], cfg["dim"], cfg["dtype"]
    qs = Strided(rng, (b, cfg["total_q"], hq, dim), dt, padded=cfg["padded"])
    ks = Strided(rng, (b, cfg["total_k"], hkv, dim), dt, padded=cfg["padded"])
    vs = Strided(rng, (b, cfg["total_k"], hkv, dim), dt, padded=cfg["padded"])
    gs = Strided(rng, (b, cfg["total_q"], hq, dim), dt, padded=cfg["padded"])
    outs = Strided(rng, (b, cfg["total_q"], hq, dim), dt, values=7.0, padded=cfg["padded"])
    q, k, v, g = qs.value(), ks.value(), vs.value(), gs.value()
    want_out, want_lse, want_dq, want_dk, want_dv, want_dsink, mag = reference(q, k, v, g, cfg)
    keep = []
    p = params(cfg, keep)
    lse = np.full(b * hq * cfg["total_q"], 7.0, dtype=np.float32)
    rc = lib.swa_attention_forward(C.byref(p), C.byref(qs.tensor), C.byref(ks.tensor), C.byref(vs.tensor),
                                   C.byref(outs.tensor), lse.ctypes.data_as(C.POINTER(C.c_float)))
    problems = []
    if rc != 0:
        return [f"forward returned {rc}: {lib.swa_last_error().decode()}"], cfg
    got_lse = lse.astype(np.float64).reshape(b, hq, cfg["total_q"])
    e = rel_error(outs.value(), want_out)
    if not e <= TOL_FWD[dt]:
        problems.append(f"out rel error {e:.3g}")
    inf_mismatch = np.isinf(got_lse) != np.isinf(want_lse)
    finite = ~np.isinf(want_lse)
    lse_err = np.abs(got_lse[finite] - want_lse[finite]).max(initial=0.0)
    if inf_mismatch.any() or not lse_err <= 10 * TOL_FWD[dt] * (1 + np.abs(want_lse[finite]).max(initial=0.0)):
        problems.append(f"lse mismatch (abs error {lse_err:.3g}, inf parity {not inf_mismatch.any()})")
    # Backward from the library's own out and lse, as a training loop would call it.
    dqs = Strided(rng, qs.shape, dt, values=5.0, padded=cfg["padded"])
    dks = Strided(rng, ks.shape, dt, values=5.0, padded=cfg["padded"])
    dvs = Strided(rng, vs.shape, dt, values=5.0, padded=cfg["padded"])
    dsink = np.full(hq, 5.0, dtype=np.float32)
    rc = lib.swa_attention_backward(C.byref(p), C.byref(qs.tensor), C.byref(ks.tensor), C.byref(vs.tensor),
                                    C.byref(outs.tensor), lse.ctypes.data_as(C.POINTER(C.c_float)),
                                    C.byref(gs.tensor), C.byref(dqs.tensor), C.byref(dks.tensor),
                                    C.byref(dvs.tensor), dsink.ctypes.data_as(C.POINTER(C.c_float))
                                    if cfg["sink_logits"] is not None else None)
    if rc != 0:
        return problems + [f"backward returned {rc}: {lib.swa_last_error().decode()}"], cfg
    for name, got, want in (("dq", dqs.value(), want_dq), ("dk", dks.value(), want_dk), ("dv", dvs.value(), want_dv)):
        e = rel_error(got, want, mag[name])
        if not e <= TOL_BWD[dt]:
            problems.append(f"{name} rel error {e:.3g}")
    if cfg["sink_logits"] is not None:
        e = rel_error(dsink.astype(np.float64), want_dsink, mag["dsink"])
        if not e <= TOL_BWD[dt]:
            problems.append(f"dsink rel error {e:.3g}: {dsink} vs {want_dsink}")
    return problems, cfg


def command_line(default_count, default_seed):
    """The checks' shared command line, `script.py path/to/libswa.so [count [seed]]`:
    the library (with swa_last_error typed), the count and a generator from the seed."""
    lib = C.CDLL(sys.argv[1])
    lib.swa_last_error.restype = C.c_char_p
    count = int(sys.argv[2]) if len(sys.argv) > 2 else default_count
    rng = np.random.default_rng(int(sys.argv[3]) if len(sys.argv) > 3 else default_seed)
    return lib, count, rng


def main():
    lib, cases, rng = command_line(300, 20261128)
    failures = 0
    for n in range(cases):
        problems, cfg = check_case(lib, rng, n)
        if problems:
            failures += 1
            shown = {key: val for key, val in cfg.items() if key not in ("hq", "hkv")}
            print(f"case {n} FAILED: {'; '.join(problems)}\n  hq={cfg['hq']} hkv={cfg['hkv']} {shown}")
    print(f"{cases - failures}/{cases} cases agree with the contract (forward and backward)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
