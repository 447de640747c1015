"""swa.nn.SlidingWindowAttention: the attention layer of docs/MODEL.md as a torch module.

    attn = swa.nn.SlidingWindowAttention(hidden_size=512, num_heads=8, num_kv_heads=2,
                                         windows=[(255, 0)] * 4 + [(-1, 0)] * 4, gated_fusion=True)
    y = attn(x)                                   # x [B, L, 512] -> [B, L, 512]

q, k, v and o projections without biases (GQA when num_kv_heads < num_heads), RoPE
("rotate half", angle = pos * theta^(-2i/D)) or ALiBi (slope of head h of Hq:
2^(-8(h+1)/Hq)), a (left, right) window per head in swa's convention (docs/WINDOWS.md;
swa.windows converts others), sink tokens, learned sinks, a softcap on the scores, and
gated fusion: heads with the same window form a group g (numbered by first head), and
head h's output is scaled by sigmoid(x . gate.weight[g] + gate.bias[g]). Parameter names
are the checkpoint's (q_proj.weight, ..., sinks, gate.weight, gate.bias), so a swa
checkpoint's `model.layers.{i}.self_attn.*` tensors load with load_state_dict.
"""

import math

import torch
from torch import nn

from .attention import attention


def _pair(window, name):
    left, right = (int(w) for w in window)
    if left < -1 or right < -1:
        raise ValueError(f"{name}: ({left}, {right}) must be integers >= -1")
    return left, right


def _groups(windows):
    first = {}
    return [first.setdefault(w, len(first)) for w in windows]


class SlidingWindowAttention(nn.Module):
    """Multi-head causal attention with per-head sliding windows (docs/MODEL.md's layer).

    hidden_size: d.  num_heads: Hq.  num_kv_heads: Hkv (default Hq; Hq a multiple).
    head_dim: D (default d / Hq).  windows: one (left, right) for every head, or a list of
    Hq pairs; (-1, 0) is a global causal head, (W - 1, 0) a window of W tokens.
    positional: "rope", "alibi" or None.  rope_theta: the RoPE base.
    learned_sinks: a sink logit per head (gpt-oss).  softcap: c tanh(s / c) on the scores.
    sink_tokens: the first keys every query sees.  gated_fusion: a sigmoid gate per window
    group.  causal: keys after the query are hidden (the model's layers are causal).
    """

    def __init__(self, hidden_size, num_heads, *, num_kv_heads=None, head_dim=None, windows=(-1, 0),
                 positional="rope", rope_theta=10000.0, learned_sinks=False, softcap=0.0, sink_tokens=0,
                 gated_fusion=False, causal=True, device=None, dtype=None):
        super().__init__()
        num_kv_heads = num_kv_heads or num_heads
        head_dim = head_dim or hidden_size // num_heads
        if num_heads % num_kv_heads:
            raise ValueError(f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads})")
        if positional not in ("rope", "alibi", None):
            raise ValueError(f"positional must be 'rope', 'alibi' or None, got {positional!r}")
        if positional == "rope" and head_dim % 2:
            raise ValueError(f"head_dim ({head_dim}) must be even for RoPE")
        if len(windows) == 2 and not isinstance(windows[0], (tuple, list)):
            windows = [windows] * num_heads
        if len(windows) != num_heads:
            raise ValueError(f"windows has {len(windows)} entries but num_heads is {num_heads}")
        self.windows = [_pair(w, f"windows[{h}]") for h, w in enumerate(windows)]
        self.hidden_size, self.num_heads, self.num_kv_heads, self.head_dim = (
            hidden_size, num_heads, num_kv_heads, head_dim)
        self.positional, self.rope_theta = positional, float(rope_theta)
        self.softcap, self.sink_tokens, self.causal = float(softcap), int(sink_tokens), bool(causal)
        self.groups = _groups(self.windows)
        kw = dict(device=device, dtype=dtype)
        self.q_proj = nn.Linear(hidden_size, num_heads * head_dim, bias=False, **kw)
        self.k_proj = nn.Linear(hidden_size, num_kv_heads * head_dim, bias=False, **kw)
        self.v_proj = nn.Linear(hidden_size, num_kv_heads * head_dim, bias=False, **kw)
        self.o_proj = nn.Linear(num_heads * head_dim, hidden_size, bias=False, **kw)
        self.sinks = nn.Parameter(torch.zeros(num_heads, **kw)) if learned_sinks else None
        self.gate = nn.Linear(hidden_size, max(self.groups) + 1, **kw) if gated_fusion else None
        self.register_buffer("_group_index", torch.tensor(self.groups, dtype=torch.int64, device=device),
                             persistent=False)

    @classmethod
    def from_swa_config(cls, config, layer, **kwargs):
        """Layer `layer` of a swa model config (docs/MODEL.md's JSON, as a dict)."""
        spec = config["layers"][layer]
        return cls(config["hidden_size"], config["num_attention_heads"],
                   num_kv_heads=config["num_key_value_heads"], head_dim=config["head_dim"],
                   windows=[tuple(w) for w in spec["windows"]],
                   positional="alibi" if spec.get("alibi") else "rope",
                   rope_theta=spec.get("rope_theta", config.get("rope_theta", 10000.0)),
                   learned_sinks=bool(spec.get("learned_sinks")),
                   softcap=spec.get("attn_logit_softcapping", 0.0) or 0.0,
                   sink_tokens=spec.get("sink_tokens", 0), gated_fusion=bool(spec.get("gated_fusion")), **kwargs)

    def _rope(self, x, positions):
        """x [B, L, H, D] rotated at positions [B or 1, L]; angles in float64, then x's dtype."""
        half = self.head_dim // 2
        i = torch.arange(half, dtype=torch.float64, device=x.device)
        angle = positions.to(torch.float64)[..., None] * self.rope_theta ** (-2.0 * i / self.head_dim)
        cos = torch.cos(angle).to(x.dtype)[:, :, None, :]  # [B, L, 1, D/2]
        sin = torch.sin(angle).to(x.dtype)[:, :, None, :]
        a, b = x[..., :half], x[..., half:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)

    def alibi_slopes(self):
        return [2.0 ** (-8.0 * (h + 1) / self.num_heads) for h in range(self.num_heads)]

    def forward(self, x, positions=None, cu_seqlens=None):
        """x [B, L, d] -> [B, L, d]. positions [B, L] or [L] (default 0..L-1) place RoPE.
        cu_seqlens [S + 1] packs S documents into x [1, total, d]: each attends only inside
        itself, positions restart at 0 (unless given)."""
        if x.dim() != 3 or x.shape[-1] != self.hidden_size:
            raise ValueError(f"x must be [batch, seqlen, {self.hidden_size}], got shape {list(x.shape)}")
        B, L, _ = x.shape
        q = self.q_proj(x).view(B, L, self.num_heads, self.head_dim)
        k = self.k_proj(x).view(B, L, self.num_kv_heads, self.head_dim)
        v = self.v_proj(x).view(B, L, self.num_kv_heads, self.head_dim)
        if cu_seqlens is not None:
            cu_seqlens = torch.as_tensor(cu_seqlens, dtype=torch.int64, device=x.device)
            if B != 1:
                raise ValueError(f"cu_seqlens packs documents into batch 1, got batch {B}")
        if self.positional == "rope":
            if positions is None:
                positions = torch.arange(L, device=x.device)
                if cu_seqlens is not None:
                    segment = torch.searchsorted(cu_seqlens[1:], positions, right=True)
                    positions = positions - cu_seqlens[segment]
            positions = torch.as_tensor(positions, device=x.device).reshape(-1, L)
            q, k = self._rope(q, positions), self._rope(k, positions)
        same = all(w == self.windows[0] for w in self.windows)
        out = attention(q, k, v, causal=self.causal, window=self.windows[0] if same else (-1, -1),
                        head_windows=None if same else self.windows, softcap=self.softcap,
                        alibi_slopes=self.alibi_slopes() if self.positional == "alibi" else None,
                        sink_tokens=self.sink_tokens, sink_logits=self.sinks, scale=1.0 / math.sqrt(self.head_dim),
                        cu_seqlens_q=cu_seqlens, cu_seqlens_k=cu_seqlens)  # [B, L, Hq, D]
        if self.gate is not None:
            gate = torch.sigmoid(self.gate(x))  # [B, L, G]
            out = out * gate[..., self._group_index][..., None]
        return self.o_proj(out.reshape(B, L, self.num_heads * self.head_dim))

    def extra_repr(self):
        return (f"hidden_size={self.hidden_size}, num_heads={self.num_heads}, num_kv_heads={self.num_kv_heads}, "
                f"head_dim={self.head_dim}, windows={self.windows}, positional={self.positional}, "
                f"learned_sinks={self.sinks is not None}, softcap={self.softcap}, sink_tokens={self.sink_tokens}, "
                f"gated_fusion={self.gate is not None}")
