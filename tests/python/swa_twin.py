"""An independent PyTorch twin of swa's model (docs/MODEL.md, with the attention rule of
docs/ATTENTION.md).

Written from the contract's text alone and sharing no code with swa's C++ model, so that the
two can be checked against each other. One function per formula; the checkpoint format is
docs/MODEL.md's (safetensors, Hugging Face Llama/Mistral tensor names, the config as a JSON
string in the metadata).

    config, state = load_checkpoint("model.safetensors")
    model = TwinModel(config, state)                     # float32; .to(torch.float64) works
    logits = model(tokens)                               # tokens [L] -> [L, V]
    logits = model(tokens, cu_seqlens=[0, 5, 12])        # a packed stream of 2 documents
    loss = model.loss(tokens, targets)                   # mean CE over targets != PAD

Attention modes: "reference" is an explicit masked softmax in the model's dtype, written
plainly, one head at a time. "sdpa" hands the same scores to
torch.nn.functional.scaled_dot_product_attention with a boolean band mask [Hq, L, L], as a
PyTorch user would write it; ALiBi and learned sinks turn that mask into a float bias, the
sinks as one extra key column (key and value zero, bias = the sink logit), so that
exp(sink) joins the denominator and contributes no value. sdpa cannot apply a tanh to the
scores, so it rejects attn_logit_softcapping with a ValueError.
"""
import json
import math

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

BOS, EOS, PAD = 256, 257, 258
ATTENTION_MODES = ("reference", "sdpa")
MODEL_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "intermediate_size", "rms_norm_eps",
                "rope_theta", "tie_word_embeddings", "final_logit_softcapping", "layers")
LAYER_DEFAULTS = {"sink_tokens": 0, "learned_sinks": False, "attn_logit_softcapping": 0.0,
                  "alibi": False, "gated_fusion": False}


# ----------------------------------------------------------------------------- config


def check_config(config):
    """Raises ValueError naming the first field of `config` that breaks docs/MODEL.md."""
    missing = [name for name in MODEL_FIELDS if name not in config]
    if missing:
        raise ValueError(f"config: missing field(s) {missing}")
    for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "head_dim", "intermediate_size"):
        if not isinstance(config[name], int) or config[name] <= 0:
            raise ValueError(f"config.{name}: must be a positive integer, got {config[name]!r}")
    if config["vocab_size"] <= PAD:
        raise ValueError(f"config.vocab_size: must hold the {PAD + 1} byte and special tokens")
    if config["num_attention_heads"] % config["num_key_value_heads"]:
        raise ValueError("config.num_attention_heads: must be a multiple of num_key_value_heads")
    if config["head_dim"] % 2:
        raise ValueError("config.head_dim: RoPE pairs x[i] with x[i + D/2], so it must be even")
    if len(config["layers"]) != config["num_hidden_layers"]:
        raise ValueError(f"config.layers: {len(config['layers'])} entries for "
                         f"num_hidden_layers = {config['num_hidden_layers']}")
    for i, layer in enumerate(config["layers"]):
        windows = layer.get("windows")
        if windows is None or len(windows) != config["num_attention_heads"]:
            raise ValueError(f"config.layers[{i}].windows: needs one [left, right] per query head")
        for left, right in windows:
            if not (isinstance(left, int) and isinstance(right, int) and left >= -1 and right >= -1):
                raise ValueError(f"config.layers[{i}].windows: [{left}, {right}] is not a pair "
                                 "of integers >= -1")
        if layer.get("sink_tokens", 0) < 0:
            raise ValueError(f"config.layers[{i}].sink_tokens: must be >= 0")


def layer_option(config, i, name):
    """Layer i's value of an optional per-layer field (rope_theta falls back to the model's)."""
    if name == "rope_theta":
        return config["layers"][i].get("rope_theta", config["rope_theta"])
    return config["layers"][i].get(name, LAYER_DEFAULTS[name])


def head_groups(windows):
    """Group index of every query head: heads with equal [left, right] share a group, and
    groups are numbered in the order of their first head."""
    first_seen = {}
    return [first_seen.setdefault(tuple(pair), len(first_seen)) for pair in windows]


def tensor_shapes(config):
    """Name -> shape of every tensor a checkpoint of `config` holds (docs/MODEL.md)."""
    V, d, F_ = config["vocab_size"], config["hidden_size"], config["intermediate_size"]
    Hq, Hkv, D = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
    shapes = {"model.embed_tokens.weight": (V, d), "model.norm.weight": (d,)}
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (d,)
        shapes[p + "self_attn.q_proj.weight"] = (Hq * D, d)
        shapes[p + "self_attn.k_proj.weight"] = (Hkv * D, d)
        shapes[p + "self_attn.v_proj.weight"] = (Hkv * D, d)
        shapes[p + "self_attn.o_proj.weight"] = (d, Hq * D)
        if layer_option(config, i, "learned_sinks"):
            shapes[p + "self_attn.sinks"] = (Hq,)
        if layer_option(config, i, "gated_fusion"):
            G = max(head_groups(config["layers"][i]["windows"])) + 1
            shapes[p + "self_attn.gate.weight"] = (G, d)
            shapes[p + "self_attn.gate.bias"] = (G,)
        shapes[p + "post_attention_layernorm.weight"] = (d,)
        shapes[p + "mlp.gate_proj.weight"] = (F_, d)
        shapes[p + "mlp.up_proj.weight"] = (F_, d)
        shapes[p + "mlp.down_proj.weight"] = (d, F_)
    if not config["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (V, d)
    return shapes


def check_state(config, state):
    """Raises ValueError naming the first tensor that is missing, unexpected or misshapen."""
    shapes = tensor_shapes(config)
    for name, shape in shapes.items():
        if name not in state:
            raise ValueError(f"checkpoint: tensor {name} is missing (config asks for {list(shape)})")
        if tuple(state[name].shape) != shape:
            raise ValueError(f"checkpoint: tensor {name} has shape {list(state[name].shape)}, "
                             f"config asks for {list(shape)}")
    for name in state:
        if name not in shapes:
            raise ValueError(f"checkpoint: tensor {name} is not part of this config")


# ------------------------------------------------------------------------- checkpoints


def load_checkpoint(path):
    """safetensors file -> (config dict from metadata["config"], {name: tensor})."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
        if "config" not in metadata:
            raise ValueError(f"{path}: no __metadata__['config'] (not a swa checkpoint)")
        config = json.loads(metadata["config"])
        state = {name: f.get_tensor(name) for name in f.keys()}
    return config, state


def random_config(seed=0, *, window=None, mixed_windows=False, layers=None, **fields):
    """A small config (docs/MODEL.md). `fields` override the model fields (vocab_size, hidden_size,
    num_hidden_layers, ..., tie_word_embeddings, final_logit_softcapping). Every head of
    every layer gets the window [window - 1, 0] (W tokens, Mistral's sliding_window = W)
    when `window` is given, else [-1, 0]; with mixed_windows, each layer draws one window
    per head from a few widths and global heads (seeded by `seed`). `layers` is an optional
    list of per-layer dicts (rope_theta, sink_tokens, learned_sinks, attn_logit_softcapping,
    alibi, gated_fusion, windows) merged into the generated layers; a single dict applies to
    every layer."""
    config = {"vocab_size": 260, "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
              "intermediate_size": 48, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
              "tie_word_embeddings": True, "final_logit_softcapping": 0.0}
    unknown = set(fields) - set(config)
    if unknown:
        raise ValueError(f"random_config: unknown field(s) {sorted(unknown)}")
    config.update(fields)
    generator = torch.Generator().manual_seed(seed)
    Hq, n = config["num_attention_heads"], config["num_hidden_layers"]
    if isinstance(layers, dict):
        layers = [layers] * n
    config["layers"] = []
    for i in range(n):
        if mixed_windows:
            choices = [[-1, 0], [1, 0], [3, 0], [6, 0], [2, 0], [4, 0]]
            windows = [choices[int(torch.randint(len(choices), (1,), generator=generator))]
                       for _ in range(Hq)]
            windows[int(torch.randint(Hq, (1,), generator=generator))] = [-1, 0]
        else:
            windows = [[window - 1, 0] if window is not None else [-1, 0]] * Hq
        layer = {"windows": [list(pair) for pair in windows]}
        if layers is not None:
            layer.update(layers[i])
        config["layers"].append(layer)
    check_config(config)
    return config


def random_state(config, seed=0):
    """Random float32 tensors for every name of tensor_shapes(config), scaled so that
    activations stay of order one (linear weights ~ N(0, 1/fan_in), norm weights near 1)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in tensor_shapes(config).items():
        if name.endswith("norm.weight"):
            tensor = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif name.endswith("self_attn.sinks") or name.endswith("gate.bias"):
            tensor = torch.randn(shape, generator=generator)
        elif name == "model.embed_tokens.weight":
            tensor = torch.randn(shape, generator=generator)
        else:
            tensor = torch.randn(shape, generator=generator) / math.sqrt(shape[-1])
        state[name] = tensor
    return state


def write_random_checkpoint(path, config, seed=0, dtype=torch.float32):
    """Writes random_state(config, seed) in `dtype` (float32 or bfloat16) as a swa
    checkpoint at `path`; returns the state as written (in `dtype`)."""
    if dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"write_random_checkpoint: dtype {dtype} is not float32 or bfloat16")
    check_config(config)
    state = {name: t.to(dtype).contiguous() for name, t in random_state(config, seed).items()}
    save_file(state, str(path), metadata={"format": "pt", "config": json.dumps(config)})
    return state


# ---------------------------------------------------------------------------- formulas


def rms_norm(x, weight, eps):
    """x [L, d], weight [d] -> x / sqrt(mean(x^2) + eps) * weight."""
    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def rope(x, positions, theta):
    """x [L, H, D] rotated at `positions` [L], "rotate half" pairing (x[i], x[i + D/2]),
    angle = pos * theta^(-2i/D). Angles are computed in float64, then cast to x's dtype."""
    half = x.shape[-1] // 2
    i = torch.arange(half, dtype=torch.float64, device=x.device)
    angle = positions.to(torch.float64)[:, None] * theta ** (-2.0 * i / x.shape[-1])  # [L, D/2]
    cos = torch.cos(angle).to(x.dtype)[:, None, :]  # [L, 1, D/2]
    sin = torch.sin(angle).to(x.dtype)[:, None, :]
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


def alibi_slopes(num_heads):
    """Slope of query head h of Hq: 2^(-8 (h + 1) / Hq)."""
    return [2.0 ** (-8.0 * (h + 1) / num_heads) for h in range(num_heads)]


def softcap(s, cap):
    """cap * tanh(s / cap); cap <= 0 means none."""
    return cap * torch.tanh(s / cap) if cap > 0 else s


def segments_and_positions(length, cu_seqlens, device=None):
    """Segment id and position inside its segment of every token of a packed stream
    (cu_seqlens [S + 1], 0 = c_0 <= c_1 <= ... <= c_S = L); one segment when None."""
    if cu_seqlens is None:
        cu_seqlens = [0, length]
    cu = torch.as_tensor(cu_seqlens, dtype=torch.int64, device=device)
    if cu.dim() != 1 or len(cu) < 2 or cu[0] != 0 or cu[-1] != length or (cu.diff() < 0).any():
        raise ValueError(f"cu_seqlens: {cu.tolist()} must rise from 0 to the length {length}")
    index = torch.arange(length, device=device)
    segments = torch.searchsorted(cu[1:], index, right=True)  # [L]
    positions = index - cu[segments]  # [L]
    return segments, positions


def visibility(segments, positions, windows, sink_tokens):
    """Section 1's rule for a causal layer, per query head: bool [Hq, L, L], True where key j
    is visible to query i. Queries and keys share positions (Lq = Lk in each segment)."""
    p = positions[:, None]  # [L, 1] query position
    j = positions[None, :]  # [1, L] key position
    same_segment = segments[:, None] == segments[None, :]
    causal = j <= p
    extra = j < sink_tokens
    masks = []
    for left, right in windows:
        local = ((j >= p - left) if left >= 0 else True) & ((j <= p + right) if right >= 0 else True)
        masks.append((local | extra) & causal & same_segment)
    return torch.stack(masks)  # [Hq, L, L]


def attention_reference(q, k, v, visible, scale, cap, slopes, distance, sinks):
    """Explicit masked softmax, one query head at a time.
    q [L, Hq, D], k and v [L, Hkv, D], visible [Hq, L, L], slopes list[Hq] or None,
    distance [L, L] = |p - j|, sinks [Hq] or None -> [L, Hq, D]. A row that sees no key
    gives zeros."""
    Hq, Hkv = q.shape[1], k.shape[1]
    if q.shape[0] == 0:
        return q.new_zeros(q.shape)
    heads = []
    for h in range(Hq):
        kv = h // (Hq // Hkv)
        s = scale * (q[:, h] @ k[:, kv].T)  # [L, L]
        s = softcap(s, cap)
        if slopes is not None:
            s = s - slopes[h] * distance
        s = s.masked_fill(~visible[h], float("-inf"))
        row_max = s.max(dim=-1, keepdim=True).values  # [L, 1]
        if sinks is not None:
            row_max = torch.maximum(row_max, sinks[h].expand_as(row_max))
        # The shift cancels in the ratio; it only keeps exp() in range, so it carries no
        # gradient. Rows that see nothing (max = -inf) shift by 0.
        row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max)).detach()
        weights = torch.exp(s - row_max)  # [L, L], 0 where not visible
        denominator = weights.sum(dim=-1, keepdim=True)  # [L, 1]
        if sinks is not None:
            denominator = denominator + torch.exp(sinks[h] - row_max)
        denominator = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
        heads.append((weights @ v[:, kv]) / denominator)  # [L, D]
    return torch.stack(heads, dim=1)


def attention_sdpa(q, k, v, visible, scale, cap, slopes, distance, sinks):
    """The same attention through torch.nn.functional.scaled_dot_product_attention; same
    arguments and result as attention_reference."""
    if cap > 0:
        raise ValueError("attention='sdpa' cannot apply attn_logit_softcapping (a tanh on the "
                         "scores inside the softmax); use attention='reference'")
    L, Hq, D = q.shape
    if L == 0:
        return q.new_zeros(q.shape)
    group = Hq // k.shape[1]
    q = q.transpose(0, 1)  # [Hq, L, D]
    k = k.repeat_interleave(group, dim=1).transpose(0, 1)  # [Hq, L, D]
    v = v.repeat_interleave(group, dim=1).transpose(0, 1)
    if slopes is None and sinks is None:
        mask = visible  # [Hq, L, L] bool
    else:
        bias = torch.zeros(visible.shape, dtype=q.dtype, device=q.device)  # [Hq, L, L]
        if slopes is not None:
            bias = bias - torch.tensor(slopes, dtype=q.dtype, device=q.device)[:, None, None] * distance
        mask = bias.masked_fill(~visible, float("-inf"))
        if sinks is not None:
            # One extra key per head: k = 0 and v = 0, so its score is the bias = the sink.
            k = torch.cat([k, k.new_zeros(Hq, 1, D)], dim=1)  # [Hq, L + 1, D]
            v = torch.cat([v, v.new_zeros(Hq, 1, D)], dim=1)
            mask = torch.cat([mask, sinks.to(q.dtype)[:, None, None].expand(Hq, L, 1)], dim=2)
    out = F.scaled_dot_product_attention(q[None], k[None], v[None], attn_mask=mask[None],
                                         scale=scale)  # [1, Hq, L, D]
    return out[0].transpose(0, 1)  # [L, Hq, D]


def attention_sdpa_by_window(q, k, v, segments, positions, windows, sink_tokens, scale):
    """Causal attention through scaled_dot_product_attention with one boolean band mask
    [L, L] per distinct window, broadcast over the heads that have it: what a PyTorch user
    writes when heads differ only in their windows (no ALiBi, sinks or softcap).
    q [L, Hq, D], k and v [L, Hkv, D] -> [L, Hq, D]."""
    L, Hq, D = q.shape
    if L == 0:
        return q.new_zeros(q.shape)
    group = Hq // k.shape[1]
    outputs, order = [], []
    for window in dict.fromkeys(tuple(w) for w in windows):  # distinct, by first head
        heads = torch.tensor([h for h, w in enumerate(windows) if tuple(w) == window])
        mask = visibility(segments, positions, [window], sink_tokens)[0]  # [L, L]
        qh = q[:, heads].transpose(0, 1)  # [h, L, D]
        kh = k[:, heads // group].transpose(0, 1)
        vh = v[:, heads // group].transpose(0, 1)
        out = F.scaled_dot_product_attention(qh[None], kh[None], vh[None], attn_mask=mask[None, None],
                                             scale=scale)  # [1, h, L, D]
        outputs.append(out[0].transpose(0, 1))  # [L, h, D]
        order.append(heads)
    inverse = torch.argsort(torch.cat(order))
    return torch.cat(outputs, dim=1)[:, inverse]


def swiglu(h, gate_proj, up_proj, down_proj):
    """(silu(h gate_proj^T) * (h up_proj^T)) down_proj^T; h [L, d], weights [F, d], [d, F]."""
    return (F.silu(h @ gate_proj.T) * (h @ up_proj.T)) @ down_proj.T


# ------------------------------------------------------------------------------- model


class Linear(torch.nn.Module):
    """A weight [out, in] without bias, so that parameter names match docs/MODEL.md."""

    def __init__(self, out_features, in_features):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(out_features, in_features))


class Norm(torch.nn.Module):
    def __init__(self, size):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(size))


class Gate(torch.nn.Module):
    """Gated fusion: weight [G, d], bias [G]."""

    def __init__(self, groups, hidden_size):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(groups, hidden_size))
        self.bias = torch.nn.Parameter(torch.empty(groups))


class Attention(torch.nn.Module):
    def __init__(self, config, i):
        super().__init__()
        d, D = config["hidden_size"], config["head_dim"]
        Hq, Hkv = config["num_attention_heads"], config["num_key_value_heads"]
        self.q_proj, self.k_proj = Linear(Hq * D, d), Linear(Hkv * D, d)
        self.v_proj, self.o_proj = Linear(Hkv * D, d), Linear(d, Hq * D)
        if layer_option(config, i, "learned_sinks"):
            self.sinks = torch.nn.Parameter(torch.empty(Hq))
        self.groups = head_groups(config["layers"][i]["windows"])
        if layer_option(config, i, "gated_fusion"):
            self.gate = Gate(max(self.groups) + 1, d)


class Mlp(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        d, F_ = config["hidden_size"], config["intermediate_size"]
        self.gate_proj, self.up_proj, self.down_proj = Linear(F_, d), Linear(F_, d), Linear(d, F_)


class Layer(torch.nn.Module):
    def __init__(self, config, i):
        super().__init__()
        self.input_layernorm = Norm(config["hidden_size"])
        self.self_attn = Attention(config, i)
        self.post_attention_layernorm = Norm(config["hidden_size"])
        self.mlp = Mlp(config)


class Backbone(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(config["vocab_size"], config["hidden_size"])
        self.layers = torch.nn.ModuleList(Layer(config, i) for i in range(config["num_hidden_layers"]))
        self.norm = Norm(config["hidden_size"])


class TwinModel(torch.nn.Module):
    """Section 5's transformer; state_dict() names are the checkpoint's tensor names."""

    def __init__(self, config, state, attention="reference"):
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention: {attention!r} is not one of {ATTENTION_MODES}")
        check_config(config)
        check_state(config, state)
        self.config = config
        self.attention = attention
        self.model = Backbone(config)
        if not config["tie_word_embeddings"]:
            self.lm_head = Linear(config["vocab_size"], config["hidden_size"])
        self.load_state_dict({name: t.to(torch.float32) for name, t in state.items()}, strict=True)

    def lm_head_weight(self):
        """[V, d]: embed_tokens when tied."""
        if self.config["tie_word_embeddings"]:
            return self.model.embed_tokens.weight
        return self.lm_head.weight

    def attention_block(self, i, h, segments, positions):
        """Layer i's attention on normed input h [L, d] -> o o_proj^T [L, d]."""
        config, layer = self.config, self.model.layers[i].self_attn
        L, D = h.shape[0], config["head_dim"]
        Hq, Hkv = config["num_attention_heads"], config["num_key_value_heads"]
        q = (h @ layer.q_proj.weight.T).view(L, Hq, D)
        k = (h @ layer.k_proj.weight.T).view(L, Hkv, D)
        v = (h @ layer.v_proj.weight.T).view(L, Hkv, D)
        alibi = layer_option(config, i, "alibi")
        if not alibi:
            theta = layer_option(config, i, "rope_theta")
            q, k = rope(q, positions, theta), rope(k, positions, theta)
        windows = config["layers"][i]["windows"]
        sink_tokens = layer_option(config, i, "sink_tokens")
        learned_sinks = layer_option(config, i, "learned_sinks")
        cap = layer_option(config, i, "attn_logit_softcapping")
        if self.attention == "sdpa" and not alibi and not learned_sinks and not cap:
            # One boolean band mask per distinct window, shared by that window's heads.
            a = attention_sdpa_by_window(q, k, v, segments, positions, windows, sink_tokens, 1.0 / math.sqrt(D))
        else:
            visible = visibility(segments, positions, windows, sink_tokens)
            distance = (positions[:, None] - positions[None, :]).abs().to(h.dtype) if alibi else None  # [L, L]
            attend = attention_reference if self.attention == "reference" else attention_sdpa
            a = attend(q, k, v, visible, scale=1.0 / math.sqrt(D), cap=cap,
                       slopes=alibi_slopes(Hq) if alibi else None, distance=distance,
                       sinks=layer.sinks if learned_sinks else None)
        if layer_option(config, i, "gated_fusion"):
            gate = torch.sigmoid(h @ layer.gate.weight.T + layer.gate.bias)  # [L, G]
            a = a * gate[:, layer.groups][:, :, None]  # head h scaled by its group's gate
        return a.reshape(L, Hq * D) @ layer.o_proj.weight.T

    def forward(self, tokens, cu_seqlens=None):
        """tokens [L] (int) -> logits [L, V]. With cu_seqlens [S + 1] the tokens are a packed
        stream of S documents: each attends only inside itself, RoPE restarts at 0."""
        tokens = torch.as_tensor(tokens, dtype=torch.int64)
        if tokens.dim() != 1:
            raise ValueError(f"tokens: expected shape [L], got {list(tokens.shape)}")
        if len(tokens) and (tokens.min() < 0 or tokens.max() >= self.config["vocab_size"]):
            raise ValueError(f"tokens: ids must lie in [0, {self.config['vocab_size']})")
        segments, positions = segments_and_positions(len(tokens), cu_seqlens, tokens.device)
        eps = self.config["rms_norm_eps"]
        x = self.model.embed_tokens.weight[tokens]  # [L, d]
        for i, layer in enumerate(self.model.layers):
            h = rms_norm(x, layer.input_layernorm.weight, eps)
            x = x + self.attention_block(i, h, segments, positions)
            h = rms_norm(x, layer.post_attention_layernorm.weight, eps)
            x = x + swiglu(h, layer.mlp.gate_proj.weight, layer.mlp.up_proj.weight,
                           layer.mlp.down_proj.weight)
        logits = rms_norm(x, self.model.norm.weight, eps) @ self.lm_head_weight().T  # [L, V]
        return softcap(logits, self.config["final_logit_softcapping"] or 0.0)

    def loss(self, tokens, targets, cu_seqlens=None):
        """Mean cross-entropy of logits(tokens) against targets [L] over targets != PAD."""
        targets = torch.as_tensor(targets, dtype=torch.int64)
        logits = self(tokens, cu_seqlens)
        if targets.shape != logits.shape[:1]:
            raise ValueError(f"targets: shape {list(targets.shape)} != tokens' [{logits.shape[0]}]")
        scored = targets != PAD
        if not scored.any():
            raise ValueError("targets: every target is PAD, the mean loss is undefined")
        return F.cross_entropy(logits[scored], targets[scored])
