"""The installed package `swa` as a PyTorch operator (torch.library's own checks,
torch.compile with fullgraph, torch.export), its errors, and the window conversions of
swa.windows against each library's own definition of its window, restated here.

Run from the repository root: .venv/bin/python -m pytest -q tests/python/test_package_ops.py
"""

import numpy as np
import pytest
import torch

import swa
import swa.torch_op  # noqa: F401 (registers torch.ops.swa.*)
from test_package import reference

KWARGS = dict(window=(3, 0), causal=True, head_windows=[(1, 0), (3, 0), (-1, 0), (2, 0)], global_tokens=[0],
              softcap=4.0)


class Attention(torch.nn.Module):
    def forward(self, q, k, v, sinks):
        return swa.attention(q, k, v, sink_logits=sinks, **KWARGS)


def inputs(seed=0, L=11):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, L, 4, 8, generator=g)
    k = torch.randn(2, L, 2, 8, generator=g)
    v = torch.randn(2, L, 2, 8, generator=g)
    sinks = torch.randn(4, generator=g)
    return [t.requires_grad_() for t in (q, k, v, sinks)]


def grads(module, args):
    out = module(*args)
    w = torch.linspace(-1, 1, out.numel()).view(out.shape)
    (out * w).sum().backward()
    result = [out.detach()] + [a.grad.clone() for a in args]
    for a in args:
        a.grad = None
    return result


def expected(args):
    """Output and gradients from the float64 reference."""
    args64 = [a.detach().double().requires_grad_() for a in args]
    out, _ = reference(*args64[:3], sink_logits=args64[3], **KWARGS)
    w = torch.linspace(-1, 1, out.numel()).view(out.shape).double()
    (out * w).sum().backward()
    return [out.detach()] + [a.grad for a in args64]


def assert_close_all(got, want):
    for g, w in zip(got, want):
        torch.testing.assert_close(g.double(), w, atol=2e-5, rtol=2e-4)


def test_opcheck_validates_the_registrations():
    # torch.library's own test of a custom op: schema, fake kernel against the real one,
    # autograd registration, and that the op traces under AOT autograd.
    q, k, v, sinks = inputs()
    hw = torch.tensor([1, 3, -1, 2])
    args = (q, k, v, 3, 0, True, 0.0, 4.0, 0, 0, 0, 0, None, sinks, hw, torch.zeros(4, dtype=torch.long),
            torch.tensor([0]), None, None)
    torch.library.opcheck(torch.ops.swa.attention_fwd.default, args)


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph_forward_and_backward(backend):
    args = inputs(1)
    torch._dynamo.reset()
    compiled = torch.compile(Attention(), fullgraph=True, backend=backend)
    assert_close_all(grads(compiled, args), expected(args))
    # A second length reuses or recompiles the graph without breaking it.
    args = inputs(2, L=17)
    assert_close_all(grads(compiled, args), expected(args))


def test_torch_export_keeps_one_operator_node():
    args = inputs(3)
    program = torch.export.export(Attention(), tuple(args))
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert torch.ops.swa.attention_fwd.default in targets
    decomposed = program.run_decompositions()
    assert torch.ops.swa.attention_fwd.default in [n.target for n in decomposed.graph.nodes]
    out = program.module()(*args)
    torch.testing.assert_close(out.detach().double(), expected(args)[0], atol=2e-5, rtol=2e-4)


def test_torch_export_with_a_dynamic_length():
    length = torch.export.Dim("length", min=2, max=64)
    program = torch.export.export(Attention(), tuple(inputs(4)),
                                  dynamic_shapes=({1: length}, {1: length}, {1: length}, None))
    args = inputs(5, L=23)
    torch.testing.assert_close(program.module()(*args).detach().double(), expected(args)[0], atol=2e-5,
                               rtol=2e-4)


def test_lse_is_not_differentiated_and_an_expanded_gradient_runs():
    q, k, v, _ = inputs(6)
    out, lse = swa.attention(q, k, v, window=(2, 0), return_lse=True)
    assert out.requires_grad and not lse.requires_grad and lse.shape == (2, 4, 11)
    out.sum().backward()  # dout is a stride-0 expansion of one element: copied, then run
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    reference(q64, k64, v64, window=(2, 0))[0].sum().backward()
    for got, want in ((q.grad, q64.grad), (k.grad, k64.grad), (v.grad, v64.grad)):
        torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=2e-4)


# ---- Bad inputs: exceptions that carry the library's message ------------------------------


def numpy_inputs(Hq=4, Hkv=2, D=8, L=10, dtype=np.float32):
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, L, Hq, D)).astype(dtype)
    k = rng.standard_normal((1, L, Hkv, D)).astype(dtype)
    return q, k, k.copy()


@pytest.mark.parametrize("framework", ["numpy", "torch"])
@pytest.mark.parametrize("change,kwargs,exception,message", [
    ("k_head_dim", {}, swa.SwaInvalidArgument, "k and q must have the same head_dim"),
    ("mixed_dtypes", {}, swa.SwaInvalidArgument, "q, k, v and out must have the same dtype"),
    ("gqa", {}, swa.SwaInvalidArgument, r"query heads \(3\) must be a multiple of kv heads \(2\)"),
    ("", dict(window=(-2, 0)), swa.SwaInvalidArgument, r"window_left must be -1 \(unbounded\) or >= 0, got -2"),
    ("", dict(chunk=(-1, 0)), swa.SwaInvalidArgument, "chunk_size must be >= 0"),
    ("", dict(sink_tokens=-1), swa.SwaInvalidArgument, "sink_tokens must be >= 0"),
    ("", dict(global_tokens=[3, 1]), swa.SwaInvalidArgument, r"global_tokens must be sorted ascending"),
    ("", dict(cu_seqlens_q=[0, 6, 4, 10], cu_seqlens_k=[0, 3, 5, 10]), swa.SwaInvalidArgument,
     r"cu_seqlens_q must be non-decreasing \(at index 2\)"),
    ("", dict(cu_seqlens_q=[0, 6, 9], cu_seqlens_k=[0, 3, 10]), swa.SwaInvalidArgument,
     r"cu_seqlens_q\[num_seqs\] = 9 must equal the packed length 10"),
    ("", dict(cu_seqlens_q=[0, 10], cu_seqlens_k=[0, 5, 10]), ValueError, "the same length"),
    ("", dict(cu_seqlens_q=[0, 10]), ValueError, "must be given together"),
    ("", dict(sink_logits=[0.0, 1.0]), ValueError, r"one entry per query head \(4\)"),
    ("", dict(head_windows=[(1, 0)] * 3), ValueError, r"one entry per query head \(4\)"),
    ("", dict(window=5), TypeError, "window must be a pair"),
    ("3d", {}, ValueError, "must be 4-D"),
    ("float64", {}, TypeError, "swa takes float32"),
])
def test_bad_inputs_raise_with_the_library_message(framework, change, kwargs, exception, message):
    q, k, v = numpy_inputs(Hq=3 if change == "gqa" else 4)
    if change == "k_head_dim":
        k, v = k[..., :4], v[..., :4]
    elif change == "mixed_dtypes":
        k = k.astype(np.float16)
    elif change == "3d":
        q = q[0]
    elif change == "float64":
        q = q.astype(np.float64)
    if framework == "torch":
        q, k, v = (torch.from_numpy(np.ascontiguousarray(a)) for a in (q, k, v))
    with pytest.raises(exception, match=message):
        swa.attention(q, k, v, **kwargs)


def test_library_errors_are_swa_errors_with_a_code():
    q, k, v = numpy_inputs()
    with pytest.raises(swa.SwaError) as info:
        swa.attention(q, k, v, window=(0, -7))
    assert info.value.code == -1 and isinstance(info.value, ValueError)
    assert str(info.value) == "window_right must be -1 (unbounded) or >= 0, got -7"


# ---- Window conversions against each library's own definition ----------------------------


def swa_mask(window, L):
    """Visible (p, j) pairs of swa's window (left, right) with Lq = Lk = L, causal."""
    p = np.arange(L)[:, None]
    j = np.arange(L)[None, :]
    left, right = window
    return ((left < 0) | (j >= p - left)) & ((right < 0) | (j <= p + right)) & (j <= p)


@pytest.mark.parametrize("W", [1, 2, 5, 8])
def test_window_conversions(W):
    L = 12
    p = np.arange(L)[:, None]
    j = np.arange(L)[None, :]
    causal = j <= p
    # Hugging Face (masking_utils' sliding window): key j for query p iff p - W < j <= p.
    assert swa.windows.from_hf(W) == (W - 1, 0)
    assert np.array_equal(swa_mask(swa.windows.from_hf(W), L), causal & (j > p - W))
    # llama.cpp (is_masked_swa, standard): masked iff p - j >= n_swa.
    assert np.array_equal(swa_mask(swa.windows.from_llama_cpp(W), L), causal & ~(p - j >= W))
    # llama.cpp symmetric: masked iff |p - j| > n_swa / 2 (integer half).
    left, right = swa.windows.from_llama_cpp(W, "symmetric")
    assert (left, right) == (W // 2, W // 2)
    # xformers' causal local masks: triu(tril(ones), diagonal = -W + 1).
    xformers = np.triu(np.tril(np.ones((L, L), dtype=bool)), -W + 1)
    assert np.array_equal(swa_mask(swa.windows.from_xformers(W), L), xformers)
    assert swa.windows.from_xformers(window_left=W, window_right=2) == (W, 2)
    # FlashAttention's window_size is swa's pair: (W, 0) sees W + 1 keys.
    assert swa.windows.from_flash_attn((W, 0)) == (W, 0)
    assert swa_mask(swa.windows.from_flash_attn((W, 0)), L)[-1].sum() == W + 1
    # FlexAttention: the sliding mask_mod `q_idx - kv_idx <= W`, causal.
    flex = swa.windows.from_flex_mask(lambda b, h, q_idx, kv_idx: (q_idx >= kv_idx) & (q_idx - kv_idx <= W), L)
    assert flex == (W, 0)


def test_window_conversion_edge_cases():
    assert swa.windows.from_hf(None) == (-1, 0)
    causal = swa.windows.from_flex_mask(lambda b, h, q_idx, kv_idx: q_idx >= kv_idx, 16)
    assert causal == (-1, 0)
    band = swa.windows.from_flex_mask(lambda b, h, q_idx, kv_idx: (q_idx - kv_idx).abs() <= 3, 16)
    assert band == (3, 3)
    with pytest.raises(ValueError, match="not a band"):
        swa.windows.from_flex_mask(lambda b, h, q_idx, kv_idx: (q_idx >= kv_idx) & (kv_idx % 2 == 0) |
                                   (q_idx == kv_idx), 16)
    with pytest.raises(ValueError, match="batch or head"):
        swa.windows.from_flex_mask(lambda b, h, q_idx, kv_idx: (q_idx - kv_idx).abs() <= h + 1, 16)
    with pytest.raises(ValueError, match="sliding_window must be >= 1"):
        swa.windows.from_hf(0)
    with pytest.raises(ValueError, match="chunk=n_swa"):
        swa.windows.from_llama_cpp(8, "chunked")
