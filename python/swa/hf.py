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
swa's own, bottom-right aligned, which is also what a KV cache in decoding needs). A 2-D
padding mask with a padded position, a packed batch (position_ids that restart) or any
custom 4-D mask raises NotImplementedError: run unpadded batches (batch size 1, or equal
lengths). Attention dropout in training raises NotImplementedError too.
"""

import json

import torch

from .windows import from_hf

NAME = "swa"


def attention_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None,
                      sliding_window=None, softcap=None, s_aux=None, **kwargs):
    """The AttentionInterface function: query [B, Hq, Lq, D], key and value [B, Hkv, Lk, D]
    (HF's BHSD) -> (out [B, Lq, Hq, D], None). Attention weights are never materialised, so
    output_attentions gets None."""
    if attention_mask is not None:
        raise NotImplementedError(
            "swa's transformers backend runs unpadded batches only: got an attention mask of shape "
            f"{list(attention_mask.shape)} (padding, packed sequences or a custom mask); use batch size 1 "
            "or sequences of equal length without padding")
    if dropout and module.training:
        raise NotImplementedError(f"swa's transformers backend has no attention dropout (got dropout={dropout})")
    is_causal = kwargs.get("is_causal")
    if is_causal is None:
        is_causal = getattr(module, "is_causal", True)
    if not is_causal:
        if sliding_window is not None:
            raise NotImplementedError("swa's transformers backend: bidirectional sliding windows are not mapped")
        window = (-1, -1)
    else:
        window = from_hf(int(sliding_window) if sliding_window is not None else None)
    sinks = s_aux if s_aux is not None else getattr(module, "sinks", None)
    from .attention import attention
    out = attention(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), window=window,
                    causal=bool(is_causal), softcap=float(softcap) if softcap else 0.0, sink_logits=sinks,
                    scale=scaling)
    return out, None


def mask_function(batch_size, q_length, kv_length, q_offset=0, kv_offset=0, mask_function=None,
                  attention_mask=None, allow_is_causal_skip=True, **kwargs):
    """The AttentionMaskInterface function: None when the layer's own causal or sliding rule
    is the whole mask; otherwise HF's boolean 4-D mask, which attention_forward refuses
    with a clear message (rather than dropping the padding silently)."""
    padded = attention_mask is not None and not (attention_mask.shape[-1] >= kv_length
                                                  and bool(attention_mask[:, -kv_length:].all()))
    if allow_is_causal_skip and not padded:
        return None
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
