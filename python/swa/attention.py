"""swa.attention: sliding-window attention on torch tensors or numpy arrays (BSHD).

The rule is docs/ATTENTION.md's: q [B, Lq, Hq, D], k and v [B, Lk, Hkv, D], out like q,
lse [B, Hq, Lq] float32; positions bottom-right aligned; windows in FlashAttention's
(left, right) convention (docs/WINDOWS.md converts other libraries' conventions).
"""

import sys

import numpy as np

from . import _lib
from .options import build_params, head_window_columns, scalars

_NUMPY_DTYPES = {"float32": _lib.SWA_F32, "float16": _lib.SWA_F16, "bfloat16": _lib.SWA_BF16}


def _is_torch(x):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def numpy_view(a, name):
    """(array, swa_tensor) for a 4-D float32/float16/bfloat16 array; the array itself when
    the C API takes its strides (non-negative, whole elements, last 1), else a copy."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(a).__name__}")
    if a.dtype.name not in _NUMPY_DTYPES:
        raise TypeError(f"{name} has dtype {a.dtype}; swa takes float32, float16 or bfloat16")
    if a.ndim != 4:
        raise ValueError(f"{name} must be 4-D [batch, seqlen, heads, head_dim], got shape {list(a.shape)}")
    size = a.itemsize
    # The stride of a dimension of size 1 is never used; give it the contiguous one.
    dense = [int(np.prod(a.shape[i + 1:])) for i in range(4)]
    strides = [st // size if n > 1 else dense[i] for i, (st, n) in enumerate(zip(a.strides, a.shape))]
    usable = all(st >= 0 and st % size == 0 for st, n in zip(a.strides, a.shape) if n > 1)
    if not usable or (a.shape[3] > 1 and strides[3] != 1):
        a = np.ascontiguousarray(a)
        strides = [st // size for st in a.strides]
    strides[3] = 1
    return a, _lib.make_tensor(a.ctypes.data, _NUMPY_DTYPES[a.dtype.name], _lib.SWA_CPU, a.shape, strides)


def _numpy_params(q, window, causal, softcap, alibi_slopes, sink_tokens, sink_logits, head_windows,
                  chunk, global_tokens, cu_seqlens_q, cu_seqlens_k, scale, num_threads):
    s = scalars(window=window, causal=causal, softcap=softcap, sink_tokens=sink_tokens, chunk=chunk,
                scale=scale, num_threads=num_threads)
    hwl = hwr = None
    if head_windows is not None:
        hwl, hwr = head_window_columns(head_windows)
    return build_params(s, q.shape[2] if q.ndim == 4 else 0, alibi_slopes=alibi_slopes,
                        sink_logits=sink_logits, head_window_left=hwl, head_window_right=hwr,
                        global_tokens=global_tokens, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k)


def attention(q, k, v, *, window=(-1, -1), causal=False, softcap=0.0, alibi_slopes=None, sink_tokens=0,
              sink_logits=None, head_windows=None, chunk=None, global_tokens=None, cu_seqlens_q=None,
              cu_seqlens_k=None, scale=None, return_lse=False, num_threads=0):
    """Attention of q [B, Lq, Hq, D] over k, v [B, Lk, Hkv, D] under the sliding-window rule.

    window: (left, right) keys before and after the query's own position, -1 unbounded
      (FlashAttention's window_size); (W - 1, 0) is a causal window of W tokens.
    causal: keys after the query's position are hidden (bottom-right aligned).
    softcap: s = softcap * tanh(s / softcap) when > 0.  scale: None is 1/sqrt(D).
    alibi_slopes [Hq]: s -= slope_h * |p - j|.
    sink_tokens: the first keys every query sees.  sink_logits [Hq]: learned sinks (gpt-oss).
    head_windows [Hq, 2]: a (left, right) per query head, overriding window.
    chunk: C or (C, overlap): block-local attention instead of the window.
    global_tokens: sorted key positions seen by every query and seeing every key.
    cu_seqlens_q, cu_seqlens_k [num_seqs + 1]: varlen packing, tensors [1, total, H, D].
    return_lse: also return lse [B, Hq, Lq] (float32, natural log).

    Torch tensors run through the operator torch.ops.swa.attention_fwd (autograd for q, k,
    v and sink_logits; torch.compile and torch.export). Numpy arrays (float32, float16, or
    ml_dtypes' bfloat16) run directly. Errors raise swa.SwaError subclasses (ValueError for
    bad arguments) with the library's message.
    """
    kwargs = dict(window=window, causal=causal, softcap=softcap, alibi_slopes=alibi_slopes,
                  sink_tokens=sink_tokens, sink_logits=sink_logits, head_windows=head_windows,
                  chunk=chunk, global_tokens=global_tokens, cu_seqlens_q=cu_seqlens_q,
                  cu_seqlens_k=cu_seqlens_k, scale=scale, num_threads=num_threads)
    if _is_torch(q):
        from . import torch_op
        out, lse = torch_op.attention(q, k, v, **kwargs)
    else:
        out, lse = _numpy_forward(q, k, v, **kwargs)
    return (out, lse) if return_lse else out


def _numpy_forward(q, k, v, **kwargs):
    q, qt = numpy_view(q, "q")
    k, kt = numpy_view(k, "k")
    v, vt = numpy_view(v, "v")
    params, keep = _numpy_params(q, **kwargs)
    out = np.empty(q.shape, dtype=q.dtype)
    lse = np.empty((q.shape[0], q.shape[2], q.shape[1]), dtype=np.float32)
    _, ot = numpy_view(out, "out")
    _lib.forward(params, qt, kt, vt, ot, lse.ctypes.data if lse.size else None)
    return out, lse


def attention_backward(dout, q, k, v, out, lse, *, window=(-1, -1), causal=False, softcap=0.0,
                       alibi_slopes=None, sink_tokens=0, sink_logits=None, head_windows=None, chunk=None,
                       global_tokens=None, cu_seqlens_q=None, cu_seqlens_k=None, scale=None, num_threads=0):
    """The backward of swa.attention on numpy arrays: (dq, dk, dv, dsink) from dout and the
    forward's out and lse (return_lse=True), with the forward's keyword arguments. dsink
    [Hq] is None without sink_logits. (Torch tensors get gradients through autograd.)"""
    q, qt = numpy_view(q, "q")
    k, kt = numpy_view(k, "k")
    v, vt = numpy_view(v, "v")
    out, ot = numpy_view(out, "out")
    dout, dot = numpy_view(dout, "dout")
    lse = np.ascontiguousarray(lse, dtype=np.float32)
    if lse.shape != (q.shape[0], q.shape[2], q.shape[1]):
        raise ValueError(f"lse must have shape [B, Hq, Lq] = {[q.shape[0], q.shape[2], q.shape[1]]}, "
                         f"got {list(lse.shape)}")
    params, keep = _numpy_params(q, window, causal, softcap, alibi_slopes, sink_tokens, sink_logits,
                                 head_windows, chunk, global_tokens, cu_seqlens_q, cu_seqlens_k, scale,
                                 num_threads)
    dq = np.empty(q.shape, dtype=q.dtype)
    dk = np.empty(k.shape, dtype=k.dtype)
    dv = np.empty(v.shape, dtype=v.dtype)
    dsink = np.zeros(q.shape[2], dtype=np.float32) if sink_logits is not None else None
    views = [numpy_view(a, name)[1] for a, name in ((dq, "dq"), (dk, "dk"), (dv, "dv"))]
    _lib.backward(params, qt, kt, vt, ot, lse.ctypes.data if lse.size else None, dot, *views,
                  dsink.ctypes.data if dsink is not None and dsink.size else None)
    return dq, dk, dv, dsink
