"""swa as a Hugging Face transformers attention backend (docs/PYTHON.md).

    import swa, transformers
    swa.transformers.register()       # swa.transformers is this module
    model = transformers.AutoModelForCausalLM.from_pretrained(path, attn_implementation="swa")

Every layer keeps its own sliding window (the model passes `sliding_window=W` per layer,
HF's "W tokens including the query", converted with swa.windows.from_hf), Gemma 2's
attention softcap, GQA (swa takes the key/value heads as they are, without repeat_kv),
the layer's scaling and gpt-oss's learned sinks (`s_aux`, module.sinks). The call runs
through torch.ops.swa.attention_fwd, so autograd trains through it.

Masks: without padding the model asks for no mask at all (the causal or sliding rule is
swa's own, bottom-right aligned, which is also what a KV cache in decoding needs). A padded
batch (a 2-D attention_mask with zeros: left padding, as generate() uses, or right padding
without a cache) runs as swa's varlen packing (cu_seqlens), padded queries giving zeros.
Packed sequences (position_ids that restart), other mask functions and compiled
static-cache decoding raise NotImplementedError, as does attention dropout in training.
"""

import json

import torch

from .windows import from_hf

NAME = "swa"


def attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                      sliding_window=None, softcap=None, s_aux=None, **kwargs):
    """The AttentionInterface function: query [B, Hq, Lq, D], key and value [B, Hkv, Lk, D]
    (HF's BHSD) -> (out [B, Lq, Hq, D], None). Attention weights are never materialised, so
    output_attentions gets None. attention_mask is None (no padding) or mask_function's
    2-D padding mask [B, Lk] (True = a real token)."""
    if attention_mask is not None and attention_mask.dim() != 2:
        raise NotImplementedError(
            f"swa's transformers backend: a {attention_mask.dim()}-D attention mask of shape "
            f"{list(attention_mask.shape)} (packed sequences, a static cache in compiled decoding or a "
            "custom mask) is not mapped to swa; it runs causal or sliding attention with padding only")
    if dropout and module.training:
        raise NotImplementedError(f"swa's transformers backend has no attention dropout (got dropout={dropout})")
    is_causal = kwargs.get("is_causal")
    if is_causal is None:
        is_causal = getattr(module, "is_causal", True)
    if not is_causal:
        if sliding_window is not None or attention_mask is not None:
            raise NotImplementedError("swa's transformers backend: bidirectional attention runs without "
                                      "sliding windows or padding only")
        window = (-1, -1)
    else:
        window = from_hf(int(sliding_window) if sliding_window is not None else None)
    sinks = s_aux if s_aux is not None else getattr(module, "sinks", None)
    options = dict(window=window, causal=bool(is_causal), softcap=float(softcap) if softcap else 0.0,
                   sink_logits=sinks, scale=scaling)
    q, k, v = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)  # BSHD views
    if attention_mask is not None:
        return _padded(q, k, v, attention_mask.to(torch.bool), options), None
    from .attention import attention
    return attention(q, k, v, **options), None


def _padded(q, k, v, mask, options):
    """A padded batch as swa's varlen packing. q [B, Lq, Hq, D], k and v [B, Lk, Hkv, D],
    mask [B, Lk] (query i sits at key position Lk - Lq + i). Each row's real keys must be
    one run, ending at its last real query (left padding, or right padding without a
    cache), so that swa's bottom-right alignment in each packed sequence is the row's own.
    Padded queries get zeros (the model ignores them)."""
    from .attention import attention
    B, Lq, Hq, D = q.shape
    Lk = k.shape[1]
    if mask.shape != (B, Lk):
        raise NotImplementedError(f"swa's transformers backend: padding mask of shape {list(mask.shape)} "
                                  f"for keys [{B}, {Lk}]")
    q_mask = mask[:, Lk - Lq:]  # [B, Lq]
    k_count = mask.sum(dim=1)  # [B]
    q_count = q_mask.sum(dim=1)
    positions = torch.arange(Lk, device=mask.device)
    first = torch.where(mask, positions, Lk).min(dim=1).values  # [B] first real key
    last = torch.where(mask, positions, -1).max(dim=1).values
    last_q = torch.where(q_mask, positions[Lk - Lq:], -1).max(dim=1).values
    one_run = (last - first + 1 == k_count) | (k_count == 0)
    aligned = (last_q == last) | (q_count == 0)
    if not bool((one_run & aligned).all()):
        raise NotImplementedError("swa's transformers backend: each row's real tokens must be one run that "
                                  "ends at its last real query (left padding, or right padding without a cache)")
    zero = torch.zeros(1, dtype=torch.int32, device=mask.device)
    cu_q = torch.cat([zero, q_count.cumsum(0).to(torch.int32)])
    cu_k = torch.cat([zero, k_count.cumsum(0).to(torch.int32)])
    packed = attention(q[q_mask][None], k[mask][None], v[mask][None], cu_seqlens_q=cu_q, cu_seqlens_k=cu_k,
                       **options)  # [1, total_q, Hq, D]
    out = q.new_zeros(B, Lq, Hq, D)
    out[q_mask] = packed[0]
    return out


def mask_function(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, mask_function=None,
                  attention_mask=None, allow_is_causal_skip=True, **kwargs):
    """The AttentionMaskInterface function: None when the layer's own causal or sliding rule
    is the whole mask; the 2-D padding mask [B, kv_length] (its last kv_length columns, as
    for FlashAttention) when some key is padding; otherwise (packed sequences, blockwise or
    custom mask functions, compiled static-cache decoding) HF's boolean 4-D mask, which
    attention_forward refuses with a clear message rather than dropping it silently."""
    if allow_is_causal_skip:
        if attention_mask is None:
            return None
        padding = attention_mask[:, -kv_length:]
        if padding.shape[-1] == kv_length:
            return None if bool(padding.all()) else padding.to(torch.bool)
    from transformers.masking_utils import sdpa_mask
    return sdpa_mask(batch_size=batch_size, q_length=q_length, kv_length=kv_length, q_offset=q_offset,
                     kv_offset=kv_offset, mask_function=mask_function, attention_mask=attention_mask,
                     allow_is_causal_skip=False, **kwargs)


def register(name=NAME):
    """Adds `name` ("swa") to transformers' AttentionInterface and AttentionMaskInterface,
    so that from_pretrained/from_config(..., attn_implementation="swa") and
    model.set_attn_implementation("swa") use swa. Idempotent; returns the name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface
    AttentionInterface.register(name, attention_forward)
    AttentionMaskInterface.register(name, mask_function)
    return name


def to_mistral_config(swa_config, **overrides):
    """transformers.MistralConfig for a swa checkpoint whose heads all share one causal
    window [W - 1, 0] (sliding_window = W) or [-1, 0] (none), with RoPE at one base and no
    gates, sinks, sink tokens, ALiBi or softcaps (docs/MODEL.md). swa_config is the
    checkpoint's config: a dict, a JSON string, or a .safetensors checkpoint or .json file
    path. The checkpoint's tensor names are Mistral's, so `save_pretrained` of this config
    next to the unchanged model.safetensors is a Mistral model. Raises ValueError naming
    the field Mistral cannot express; `overrides` go to MistralConfig."""
    from transformers import MistralConfig
    cfg = _load(swa_config)
    windows = {tuple(pair) for layer in cfg["layers"] for pair in layer["windows"]}
    if len(windows) != 1:
        raise ValueError(f"to_mistral_config: layers[*].windows hold {sorted(windows)}; Mistral has one "
                         "window for every head of every layer")
    (left, right), = windows
    if right != 0:
        raise ValueError(f"to_mistral_config: windows [{left}, {right}] look ahead; Mistral is causal")
    theta = cfg.get("rope_theta", 10000.0)
    for i, layer in enumerate(cfg["layers"]):
        for field in ("learned_sinks", "gated_fusion", "alibi", "sink_tokens", "attn_logit_softcapping"):
            if layer.get(field):
                raise ValueError(f"to_mistral_config: layers[{i}].{field} = {layer[field]!r}; Mistral has none")
        if layer.get("rope_theta", theta) != theta:
            raise ValueError(f"to_mistral_config: layers[{i}].rope_theta differs from rope_theta; Mistral has one")
    if cfg.get("final_logit_softcapping"):
        raise ValueError("to_mistral_config: final_logit_softcapping is set; Mistral has none")
    args = dict(vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden_size"],
                intermediate_size=cfg["intermediate_size"], num_hidden_layers=cfg["num_hidden_layers"],
                num_attention_heads=cfg["num_attention_heads"], num_key_value_heads=cfg["num_key_value_heads"],
                head_dim=cfg["head_dim"], rms_norm_eps=cfg.get("rms_norm_eps", 1e-5), hidden_act="silu",
                rope_parameters={"rope_type": "default", "rope_theta": float(theta)},
                sliding_window=None if left < 0 else left + 1,
                tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)), attention_dropout=0.0)
    args.update(overrides)
    return MistralConfig(**args)


def _load(swa_config):
    """The config dict of a dict, a JSON string, a .json file or a swa .safetensors checkpoint."""
    if isinstance(swa_config, dict):
        return swa_config
    text = str(swa_config)
    if text.lstrip().startswith("{"):
        return json.loads(text)
    if text.endswith(".safetensors"):
        from safetensors import safe_open
        with safe_open(text, framework="pt") as f:
            metadata = f.metadata() or {}
        if "config" not in metadata:
            raise ValueError(f"{text}: no __metadata__['config'] (not a swa checkpoint)")
        return json.loads(metadata["config"])
    with open(text) as f:
        return json.load(f)
