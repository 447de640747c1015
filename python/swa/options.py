"""The keyword arguments of swa.attention turned into a swa_attention_params.

Shared by the numpy path (swa.attention on arrays) and the torch operator, which passes
the same values as scalars and optional tensors (swa/torch_op.py).
"""

import ctypes as C
from dataclasses import dataclass

import numpy as np

from . import _lib


@dataclass(frozen=True)
class Scalars:
    """The scalar fields of swa_attention_params, checked for type, not for value (the
    library checks values and says what is wrong)."""

    window_left: int = -1
    window_right: int = -1
    causal: bool = False
    scale: float = 0.0
    softcap: float = 0.0
    sink_tokens: int = 0
    chunk_size: int = 0
    chunk_overlap: int = 0
    num_threads: int = 0


def _int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    return int(value)


def pair(value, name):
    try:
        first, second = value
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair of ints (left, right), got {value!r}") from None
    return _int(first, f"{name}[0]"), _int(second, f"{name}[1]")


def scalars(window=(-1, -1), causal=False, softcap=0.0, sink_tokens=0, chunk=None, scale=None,
            num_threads=0):
    """window=(left, right) with -1 unbounded; chunk=None, C or (C, overlap); scale=None is
    1/sqrt(head_dim)."""
    left, right = pair(window, "window")
    if chunk is None:
        chunk_size, chunk_overlap = 0, 0
    elif isinstance(chunk, (int, np.integer)) and not isinstance(chunk, bool):
        chunk_size, chunk_overlap = int(chunk), 0
    else:
        chunk_size, chunk_overlap = pair(chunk, "chunk")
    return Scalars(window_left=left, window_right=right, causal=bool(causal),
                   scale=0.0 if scale is None else float(scale), softcap=float(softcap),
                   sink_tokens=_int(sink_tokens, "sink_tokens"), chunk_size=chunk_size,
                   chunk_overlap=chunk_overlap, num_threads=_int(num_threads, "num_threads"))


def head_window_columns(head_windows):
    """head_windows: one (left, right) per query head, as a [Hq, 2] array-like."""
    hw = np.asarray(head_windows)
    if hw.ndim != 2 or hw.shape[1] != 2:
        raise ValueError(f"head_windows must hold one (left, right) pair per query head "
                         f"(shape [Hq, 2]), got shape {list(hw.shape)}")
    if hw.size and not np.issubdtype(hw.dtype, np.integer):
        raise TypeError(f"head_windows must hold ints, got dtype {hw.dtype}")
    return hw[:, 0], hw[:, 1]


def _int_array(values, dtype, name):
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {list(a.shape)}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold ints, got dtype {a.dtype}")
    info = np.iinfo(dtype)
    if a.size and (a.min() < info.min or a.max() > info.max):
        raise ValueError(f"{name} holds values outside {np.dtype(dtype).name}")
    return np.ascontiguousarray(a, dtype=dtype)


def _per_head(values, dtype, name, num_heads):
    a = np.ascontiguousarray(np.asarray(values), dtype=dtype)
    if a.shape != (num_heads,):
        raise ValueError(f"{name} must have one entry per query head ({num_heads}), "
                         f"got shape {list(a.shape)}")
    return a


def build_params(s, num_heads, alibi_slopes=None, sink_logits=None, head_window_left=None,
                 head_window_right=None, global_tokens=None, cu_seqlens_q=None, cu_seqlens_k=None):
    """The swa_attention_params for Scalars `s` and the optional arrays (array-likes; the
    per-head ones of length num_heads). Returns (params, arrays): keep `arrays` alive for
    as long as params is used."""
    p = _lib.default_params()
    p.window_left, p.window_right = s.window_left, s.window_right
    p.causal = int(s.causal)
    p.scale, p.softcap = s.scale, s.softcap
    p.sink_tokens = s.sink_tokens
    p.chunk_size, p.chunk_overlap = s.chunk_size, s.chunk_overlap
    p.num_threads = s.num_threads
    keep = {}

    def attach(field, array):
        keep[field] = array
        setattr(p, field, array.ctypes.data_as(C.c_void_p) if array.size else None)

    if alibi_slopes is not None:
        attach("alibi_slopes", _per_head(alibi_slopes, np.float32, "alibi_slopes", num_heads))
    if sink_logits is not None:
        attach("sink_logits", _per_head(sink_logits, np.float32, "sink_logits", num_heads))
    if (head_window_left is None) != (head_window_right is None):
        raise ValueError("head_window_left and head_window_right must be given together")
    if head_window_left is not None:
        attach("head_window_left", _per_head(_int_array(head_window_left, np.int64, "head_windows"),
                                             np.int64, "head_windows", num_heads))
        attach("head_window_right", _per_head(_int_array(head_window_right, np.int64, "head_windows"),
                                              np.int64, "head_windows", num_heads))
    if global_tokens is not None:
        g = _int_array(global_tokens, np.int64, "global_tokens")
        attach("global_tokens", g)
        p.num_global_tokens = g.size
    if (cu_seqlens_q is None) != (cu_seqlens_k is None):
        raise ValueError("cu_seqlens_q and cu_seqlens_k must be given together (varlen packing)")
    if cu_seqlens_q is not None:
        cq = _int_array(cu_seqlens_q, np.int32, "cu_seqlens_q")
        ck = _int_array(cu_seqlens_k, np.int32, "cu_seqlens_k")
        if cq.size != ck.size:
            raise ValueError(f"cu_seqlens_q and cu_seqlens_k must have the same length "
                             f"(num_seqs + 1), got {cq.size} and {ck.size}")
        if cq.size == 0:
            raise ValueError("cu_seqlens_q must hold num_seqs + 1 >= 1 offsets, got none")
        attach("cu_seqlens_q", cq)
        attach("cu_seqlens_k", ck)
        p.num_seqs = cq.size - 1
    return p, keep
