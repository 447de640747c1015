"""The installed Python package `swa` (pip install .) against a float64 dense-mask
reference written here from the rule of docs/ATTENTION.md, for every mode: outputs, lse
and the gradients of q, k, v and sink_logits; numpy inputs; strided views; torch.compile
(fullgraph) and torch.export; bad inputs raising the library's message.

Run from the repository root: .venv/bin/python -m pytest -q tests/python/test_package.py
"""

import math
import pathlib

import numpy as np
import pytest
import torch

import swa

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_installed_package_is_used():
    # Not the source tree's python/swa: the wheel's copy, with libswa.so inside it.
    package = pathlib.Path(swa.__file__).resolve().parent
    assert (package / "libswa.so").is_file()
    assert ROOT / "python" not in package.parents
    assert swa.version() == "0.1.0"


# ---- The reference: the rule as a dense float64 mask -------------------------------------


def visible_mask(Lq, Lk, Hq, window=(-1, -1), causal=False, sink_tokens=0, head_windows=None, chunk=None,
                 global_tokens=None):
    """[Hq, Lq, Lk] bool: key j visible to query i of head h."""
    p = torch.arange(Lq).view(Lq, 1) + (Lk - Lq)
    j = torch.arange(Lk).view(1, Lk)
    masks = []
    for h in range(Hq):
        left, right = head_windows[h] if head_windows is not None else window
        if chunk is not None:
            size, overlap = chunk if isinstance(chunk, tuple) else (chunk, 0)
            c = torch.div(p, size, rounding_mode="floor")
            local = (j >= c * size - overlap) & (j <= (c + 1) * size - 1 + overlap)
        else:
            local = ((j >= p - left) if left >= 0 else torch.ones(Lq, Lk, dtype=torch.bool)) & (
                (j <= p + right) if right >= 0 else torch.ones(Lq, Lk, dtype=torch.bool))
        extra = (j < sink_tokens).expand(Lq, Lk)
        if global_tokens is not None:
            g = torch.tensor(list(global_tokens), dtype=torch.long)
            extra = extra | torch.isin(j, g).expand(Lq, Lk) | torch.isin(p, g).expand(Lq, Lk)
        visible = local | extra
        if causal:
            visible = visible & (j <= p)
        masks.append(visible)
    return torch.stack(masks)


def reference_dense(q, k, v, window=(-1, -1), causal=False, softcap=0.0, alibi_slopes=None, sink_tokens=0,
                    sink_logits=None, head_windows=None, chunk=None, global_tokens=None, scale=None):
    """float64 (out [B, Lq, Hq, D], lse [B, Hq, Lq]) of one batch of sequences."""
    B, Lq, Hq, D = q.shape
    Lk, Hkv = k.shape[1], k.shape[2]
    k = k.repeat_interleave(Hq // Hkv, dim=2)
    v = v.repeat_interleave(Hq // Hkv, dim=2)
    s = torch.einsum("bihd,bjhd->bhij", q, k) * (1 / math.sqrt(D) if not scale else scale)
    if softcap > 0:
        s = softcap * torch.tanh(s / softcap)
    if alibi_slopes is not None:
        p = torch.arange(Lq).view(Lq, 1) + (Lk - Lq)
        dist = (p - torch.arange(Lk).view(1, Lk)).abs().to(s.dtype)
        s = s - alibi_slopes.view(1, Hq, 1, 1).to(s.dtype) * dist
    mask = visible_mask(Lq, Lk, Hq, window, causal, sink_tokens, head_windows, chunk, global_tokens)
    s = s.masked_fill(~mask, -math.inf)
    if sink_logits is not None:
        sink = sink_logits.to(s.dtype).view(1, Hq, 1, 1).expand(B, Hq, Lq, 1)
        s = torch.cat([s, sink], dim=-1)
    lse = torch.logsumexp(s, dim=-1)
    finite = torch.isfinite(lse)
    weights = torch.exp(s - torch.where(finite, lse, torch.zeros_like(lse)).unsqueeze(-1))[..., :Lk]
    out = torch.einsum("bhij,bjhd->bihd", weights, v)
    return out, torch.where(finite, lse, torch.full_like(lse, math.inf))


def reference(q, k, v, cu_seqlens_q=None, cu_seqlens_k=None, **kwargs):
    if cu_seqlens_q is None:
        return reference_dense(q, k, v, **kwargs)
    outs, lses = [], []
    for s in range(len(cu_seqlens_q) - 1):
        a, b = cu_seqlens_q[s], cu_seqlens_q[s + 1]
        c, d = cu_seqlens_k[s], cu_seqlens_k[s + 1]
        out, lse = reference_dense(q[:, a:b], k[:, c:d], v[:, c:d], **kwargs)
        outs.append(out)
        lses.append(lse)
    return torch.cat(outs, dim=1), torch.cat(lses, dim=2)


# ---- Every mode, forward and backward ----------------------------------------------------

# (name, (B, Lq, Lk, Hq, Hkv, D), keyword arguments of swa.attention)
CASES = [
    ("full", (2, 13, 13, 4, 2, 16), {}),
    ("causal", (2, 13, 13, 4, 2, 16), dict(causal=True)),
    ("causal_window", (2, 23, 23, 4, 2, 16), dict(window=(4, 0))),
    ("two_sided_window", (2, 23, 23, 4, 2, 16), dict(window=(3, 2))),
    ("window_and_causal", (1, 23, 23, 2, 2, 8), dict(window=(5, 3), causal=True)),
    ("decode_rows", (2, 5, 31, 4, 2, 16), dict(window=(6, 0))),
    ("more_queries_than_keys", (1, 17, 9, 2, 1, 8), dict(causal=True)),
    ("softcap", (2, 19, 19, 4, 2, 16), dict(window=(5, 0), softcap=2.0, scale=0.9)),
    ("alibi", (1, 19, 19, 4, 4, 8), dict(causal=True, alibi_slopes=[0.5, 0.25, 0.125, 0.0625])),
    ("sink_tokens", (1, 29, 29, 2, 1, 16), dict(window=(3, 0), sink_tokens=2)),
    ("sink_logits", (2, 17, 17, 4, 2, 16), dict(window=(3, 0), sink_logits=[0.3, -1.0, 2.0, 0.0])),
    ("sink_logits_rows_without_keys", (1, 15, 7, 2, 2, 8), dict(causal=True, sink_logits=[1.5, -0.5])),
    ("head_windows", (1, 27, 27, 4, 2, 16), dict(head_windows=[(1, 0), (4, 0), (-1, 0), (2, 3)])),
    ("chunk", (1, 33, 33, 2, 1, 16), dict(chunk=8, causal=True)),
    ("chunk_overlap", (1, 33, 33, 2, 2, 16), dict(chunk=(8, 2))),
    ("global_tokens", (1, 29, 29, 2, 1, 16), dict(window=(2, 0), causal=True, global_tokens=[0, 9, 17])),
    ("mqa_scale", (2, 11, 11, 4, 1, 32), dict(window=(2, 2), scale=0.05)),
    ("varlen", (1, 30, 40, 4, 2, 16), dict(window=(3, 0), causal=True, cu_seqlens_q=[0, 5, 17, 17, 30],
                                            cu_seqlens_k=[0, 9, 17, 20, 40])),
    ("everything", (1, 30, 40, 4, 2, 16),
     dict(head_windows=[(2, 0), (5, 1), (-1, 0), (3, 3)], causal=True, softcap=3.0,
          alibi_slopes=[0.3, 0.1, 0.0, 0.2], sink_tokens=1, sink_logits=[0.0, 1.0, -1.0, 0.5],
          global_tokens=[4], cu_seqlens_q=[0, 12, 30], cu_seqlens_k=[0, 15, 40])),
]


def make_inputs(shape, dtype, seed):
    B, Lq, Lk, Hq, Hkv, D = shape
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Lq, Hq, D, generator=g)
    k = torch.randn(B, Lk, Hkv, D, generator=g)
    v = torch.randn(B, Lk, Hkv, D, generator=g)
    dout = torch.randn(B, Lq, Hq, D, generator=g)
    return [t.to(dtype) for t in (q, k, v)], dout


def reference_kwargs(kwargs):
    """The reference takes torch tensors for the differentiable arrays."""
    out = dict(kwargs)
    for name in ("alibi_slopes", "sink_logits"):
        if name in out:
            out[name] = torch.tensor(out[name], dtype=torch.float64)
    return out


def run_both(shape, kwargs, dtype, seed=0):
    """(swa's out, lse, grads) and the reference's, grads of q, k, v and sink_logits."""
    (q, k, v), dout = make_inputs(shape, dtype, seed)
    q, k, v = (t.requires_grad_() for t in (q, k, v))
    swa_kwargs = dict(kwargs)
    sinks = None
    if "sink_logits" in kwargs:
        sinks = torch.tensor(kwargs["sink_logits"], dtype=torch.float32, requires_grad=True)
        swa_kwargs["sink_logits"] = sinks
    out, lse = swa.attention(q, k, v, return_lse=True, **swa_kwargs)
    out.backward(dout.to(dtype))
    got = [out, lse, q.grad, k.grad, v.grad] + ([sinks.grad] if sinks is not None else [])

    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref_kwargs = reference_kwargs(kwargs)
    if sinks is not None:
        ref_kwargs["sink_logits"] = ref_kwargs["sink_logits"].requires_grad_()
    rout, rlse = reference(q64, k64, v64, **ref_kwargs)
    rout.backward(dout.double().to(dtype).double())
    want = [rout, rlse, q64.grad, k64.grad, v64.grad]
    if sinks is not None:
        want.append(ref_kwargs["sink_logits"].grad)
    return got, want


NAMES = ["out", "lse", "dq", "dk", "dv", "dsink"]


def assert_matches(got, want, atol, rtol):
    for name, g, w in zip(NAMES, got, want):
        assert g is not None, name
        torch.testing.assert_close(g.double(), w.detach(), atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("name,shape,kwargs", CASES, ids=[c[0] for c in CASES])
def test_every_mode_f32_against_the_reference(name, shape, kwargs):
    got, want = run_both(shape, kwargs, torch.float32)
    assert_matches(got, want, atol=2e-5, rtol=2e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name,shape,kwargs", [CASES[2], CASES[10], CASES[18]], ids=["window", "sinks", "all"])
def test_16_bit_inputs_against_the_reference(name, shape, kwargs, dtype):
    # The reference reads the same rounded inputs; swa accumulates in f32 and rounds the
    # outputs and gradients once, so the error is a few units of the 16-bit format.
    got, want = run_both(shape, kwargs, dtype, seed=1)
    tol = 4e-2 if dtype == torch.bfloat16 else 6e-3
    assert got[0].dtype == dtype and got[2].dtype == dtype and got[1].dtype == torch.float32
    assert_matches(got, want, atol=tol, rtol=tol)


def test_a_row_without_keys_gets_zeros_and_infinite_lse():
    (q, k, v), _ = make_inputs((1, 6, 3, 2, 1, 8), torch.float32, 2)
    out, lse = swa.attention(q, k, v, causal=True, return_lse=True)
    # p = i - 3: rows 0..2 sit before the first key.
    assert torch.all(out[:, :3] == 0) and torch.all(torch.isinf(lse[:, :, :3]))
    assert torch.all(torch.isfinite(lse[:, :, 3:]))


# ---- Strided views, numpy ----------------------------------------------------------------


def test_strided_views_pass_without_a_copy():
    from swa.attention import numpy_view
    from swa.torch_op import _view

    g = torch.Generator().manual_seed(3)
    qkv = torch.randn(2, 21, 3, 4, 16, generator=g)  # a fused projection [B, L, 3, H, D]
    q, k, v = qkv[:, :, 0], qkv[:, :, 1, :2], qkv[:, :, 2, 2:]  # GQA heads sliced out of it
    kt = torch.randn(2, 2, 21, 16, generator=g).transpose(1, 2)  # [B, H, L, D] seen as BSHD
    for t in (q, k, v, kt):
        assert not t.is_contiguous() and _view(t, "x")[0] is t
        a = t.numpy()
        assert numpy_view(a, "x")[0] is a
    out = swa.attention(q, kt, v, window=(4, 0))
    want, _ = reference(q.double(), kt.double(), v.double(), window=(4, 0))
    torch.testing.assert_close(out.double(), want, atol=2e-5, rtol=2e-4)
    # A last stride other than 1 is copied, not refused.
    odd = torch.randn(2, 21, 4, 32, generator=g)[..., ::2]
    assert _view(odd, "x")[0] is not odd
    torch.testing.assert_close(swa.attention(odd, k, v), swa.attention(odd.contiguous(), k, v))


def test_numpy_forward_and_backward():
    shape, kwargs = CASES[18][1], CASES[18][2]
    (q, k, v), dout = make_inputs(shape, torch.float32, 4)
    qn, kn, vn, dn = (t.numpy() for t in (q, k, v, dout))
    out, lse = swa.attention(qn, kn, vn, return_lse=True, **kwargs)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and lse.shape == (1, 4, 30)
    dq, dk, dv, dsink = swa.attention_backward(dn, qn, kn, vn, out, lse, **kwargs)
    got, want = run_both(shape, kwargs, torch.float32, seed=4)
    for name, g, w in zip(NAMES, [out, lse, dq, dk, dv, dsink], want):
        np.testing.assert_allclose(g, w.detach().numpy(), atol=2e-5, rtol=2e-4, err_msg=name)
    half = swa.attention(qn.astype(np.float16), kn.astype(np.float16), vn.astype(np.float16), **kwargs)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float64), want[0].detach().numpy(), atol=6e-3, rtol=6e-3)
    # A reversed (negative-stride) view is copied, then runs.
    rev = swa.attention(qn[:, ::-1], kn, vn, window=(2, 0))
    np.testing.assert_allclose(rev, swa.attention(np.ascontiguousarray(qn[:, ::-1]), kn, vn, window=(2, 0)))
