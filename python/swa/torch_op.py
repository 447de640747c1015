"""The PyTorch operator: torch.ops.swa.attention_fwd and attention_bwd, registered with
torch.library (custom ops with fake kernels and autograd), so that autograd, torch.compile
(fullgraph) and torch.export see one opaque node each.

Optional arrays are Optional[Tensor] arguments and everything else scalars, so that the
operator's schema is plain. The real kernels run libswa on the tensors' memory (strided
views pass as they are when the last stride is 1); the fake kernels compute shapes only.
lse carries no gradient (it is marked non-differentiable).
"""

from typing import Optional

import torch
from torch import Tensor

from . import _lib
from .options import build_params, pair, scalars

_TORCH_DTYPES = {torch.float32: _lib.SWA_F32, torch.bfloat16: _lib.SWA_BF16, torch.float16: _lib.SWA_F16}


def _view(t, name):
    """(tensor, swa_tensor): t itself when its last stride is 1, else a contiguous copy."""
    if t.dtype not in _TORCH_DTYPES:
        raise TypeError(f"{name} has dtype {t.dtype}; swa takes float32, bfloat16 or float16")
    if t.dim() != 4:
        raise ValueError(f"{name} must be 4-D [batch, seqlen, heads, head_dim], got shape {list(t.shape)}")
    if t.shape[3] > 1 and t.stride(3) != 1:
        t = t.contiguous()
    if t.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} is on device {t.device}; swa runs on the CPU")
    device = _lib.SWA_CUDA if t.device.type == "cuda" else _lib.SWA_CPU
    strides = list(t.stride())
    strides[3] = 1
    return t, _lib.make_tensor(t.data_ptr(), _TORCH_DTYPES[t.dtype], device, t.shape, strides)


def _np(t):
    return None if t is None else t.detach().cpu().numpy()


def _params(q, window_left, window_right, causal, scale, softcap, sink_tokens, chunk_size, chunk_overlap,
            num_threads, alibi_slopes, sink_logits, head_window_left, head_window_right, global_tokens,
            cu_seqlens_q, cu_seqlens_k):
    s = scalars(window=(window_left, window_right), causal=causal, softcap=softcap, sink_tokens=sink_tokens,
                chunk=(chunk_size, chunk_overlap), scale=scale, num_threads=num_threads)
    return build_params(s, q.shape[2], alibi_slopes=_np(alibi_slopes), sink_logits=_np(sink_logits),
                        head_window_left=_np(head_window_left), head_window_right=_np(head_window_right),
                        global_tokens=_np(global_tokens), cu_seqlens_q=_np(cu_seqlens_q),
                        cu_seqlens_k=_np(cu_seqlens_k))


@torch.library.custom_op("swa::attention_fwd", mutates_args=())
def attention_fwd(q: Tensor, k: Tensor, v: Tensor, window_left: int, window_right: int, causal: bool,
                  scale: float, softcap: float, sink_tokens: int, chunk_size: int, chunk_overlap: int,
                  num_threads: int, alibi_slopes: Optional[Tensor], sink_logits: Optional[Tensor],
                  head_window_left: Optional[Tensor], head_window_right: Optional[Tensor],
                  global_tokens: Optional[Tensor], cu_seqlens_q: Optional[Tensor],
                  cu_seqlens_k: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """(out [B, Lq, Hq, D], lse [B, Hq, Lq] float32), both contiguous."""
    q, qt = _view(q, "q")
    k, kt = _view(k, "k")
    v, vt = _view(v, "v")
    params, keep = _params(q, window_left, window_right, causal, scale, softcap, sink_tokens, chunk_size,
                           chunk_overlap, num_threads, alibi_slopes, sink_logits, head_window_left,
                           head_window_right, global_tokens, cu_seqlens_q, cu_seqlens_k)
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = torch.empty((q.shape[0], q.shape[2], q.shape[1]), dtype=torch.float32, device=q.device)
    _, ot = _view(out, "out")
    _lib.forward(params, qt, kt, vt, ot, lse.data_ptr() if lse.numel() else None)
    return out, lse


@attention_fwd.register_fake
def _attention_fwd_fake(q, k, v, *args):
    return q.new_empty(q.shape), q.new_empty((q.shape[0], q.shape[2], q.shape[1]), dtype=torch.float32)


@torch.library.custom_op("swa::attention_bwd", mutates_args=())
def attention_bwd(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, window_left: int,
                  window_right: int, causal: bool, scale: float, softcap: float, sink_tokens: int,
                  chunk_size: int, chunk_overlap: int, num_threads: int, alibi_slopes: Optional[Tensor],
                  sink_logits: Optional[Tensor], head_window_left: Optional[Tensor],
                  head_window_right: Optional[Tensor], global_tokens: Optional[Tensor],
                  cu_seqlens_q: Optional[Tensor], cu_seqlens_k: Optional[Tensor]
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(dq, dk, dv, dsink): dsink is [Hq] float32 with sink_logits, else empty."""
    q, qt = _view(q, "q")
    k, kt = _view(k, "k")
    v, vt = _view(v, "v")
    out, ot = _view(out, "out")
    dout, dot = _view(dout, "dout")
    lse = lse.contiguous()
    params, keep = _params(q, window_left, window_right, causal, scale, softcap, sink_tokens, chunk_size,
                           chunk_overlap, num_threads, alibi_slopes, sink_logits, head_window_left,
                           head_window_right, global_tokens, cu_seqlens_q, cu_seqlens_k)
    dq = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    dk = torch.empty(k.shape, dtype=k.dtype, device=k.device)
    dv = torch.empty(v.shape, dtype=v.dtype, device=v.device)
    dsink = torch.zeros(q.shape[2] if sink_logits is not None else 0, dtype=torch.float32, device=q.device)
    views = [_view(t, name)[1] for t, name in ((dq, "dq"), (dk, "dk"), (dv, "dv"))]
    _lib.backward(params, qt, kt, vt, ot, lse.data_ptr() if lse.numel() else None, dot, *views,
                  dsink.data_ptr() if dsink.numel() else None)
    return dq, dk, dv, dsink


@attention_bwd.register_fake
def _attention_bwd_fake(dout, q, k, v, out, lse, *args):
    sink_logits = args[10]
    dsink = q.new_empty((q.shape[2] if sink_logits is not None else 0,), dtype=torch.float32)
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape), dsink


_NUM_SCALARS = 9  # window_left .. num_threads, between v and alibi_slopes


def _setup_context(ctx, inputs, output):
    q, k, v = inputs[:3]
    ctx.scalars = inputs[3:3 + _NUM_SCALARS]
    optional = inputs[3 + _NUM_SCALARS:]
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, *optional)
    ctx.has_sinks = optional[1] is not None
    ctx.mark_non_differentiable(lse)


def _backward(ctx, dout, dlse):
    q, k, v, out, lse, *optional = ctx.saved_tensors
    dq, dk, dv, dsink = attention_bwd(dout, q, k, v, out, lse, *ctx.scalars, *optional)
    grads = [dq, dk, dv] + [None] * _NUM_SCALARS + [None] * len(optional)
    if ctx.has_sinks:
        grads[3 + _NUM_SCALARS + 1] = dsink
    return tuple(grads)


attention_fwd.register_autograd(_backward, setup_context=_setup_context)


def _long(values, device):
    if isinstance(values, Tensor):
        return values.to(device=device, dtype=torch.int64)
    return torch.tensor(values, dtype=torch.int64, device=device)


def _int32(values, device):
    if isinstance(values, Tensor):
        return values.to(device=device, dtype=torch.int32)
    return torch.tensor(values, dtype=torch.int32, device=device)


def _float(values, device):
    if isinstance(values, Tensor):
        return values.to(device=device, dtype=torch.float32)
    return torch.tensor(values, dtype=torch.float32, device=device)


def attention(q, k, v, *, window, causal, softcap, alibi_slopes, sink_tokens, sink_logits, head_windows, chunk,
              global_tokens, cu_seqlens_q, cu_seqlens_k, scale, num_threads):
    """swa.attention on torch tensors: (out, lse) through torch.ops.swa.attention_fwd."""
    for t, name in ((k, "k"), (v, "v")):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch tensor like q, got {type(t).__name__}")
    s = scalars(window=window, causal=causal, softcap=softcap, sink_tokens=sink_tokens, chunk=chunk,
                scale=scale, num_threads=num_threads)
    device = q.device
    hwl = hwr = None
    if head_windows is not None:
        if isinstance(head_windows, Tensor):
            if head_windows.dim() != 2 or head_windows.shape[1] != 2:
                raise ValueError(f"head_windows must hold one (left, right) pair per query head "
                                 f"(shape [Hq, 2]), got shape {list(head_windows.shape)}")
            hwl, hwr = _long(head_windows[:, 0], device), _long(head_windows[:, 1], device)
        else:
            # Plain Python (no numpy), so that torch.compile traces it.
            pairs = [pair(w, f"head_windows[{h}]") for h, w in enumerate(head_windows)]
            hwl = _long([w[0] for w in pairs], device)
            hwr = _long([w[1] for w in pairs], device)
    return attention_fwd(
        q, k, v, s.window_left, s.window_right, s.causal, s.scale, s.softcap, s.sink_tokens, s.chunk_size,
        s.chunk_overlap, s.num_threads,
        None if alibi_slopes is None else _float(alibi_slopes, device),
        None if sink_logits is None else _float(sink_logits, device),
        hwl, hwr,
        None if global_tokens is None else _long(global_tokens, device),
        None if cu_seqlens_q is None else _int32(cu_seqlens_q, device),
        None if cu_seqlens_k is None else _int32(cu_seqlens_k, device))
