"""The PyTorch twin of swa's model (swa_twin.py) against Hugging Face transformers.

Tiny models are built from config classes with random weights; nothing is downloaded.
What is checked, and against what:
- MistralForCausalLM (eager attention, float32 and float64, GQA, tied and untied lm_head):
  logits of the twin agree with transformers', with a sliding window and with full causal
  attention, for one document and for a packed stream; a swa checkpoint written by the
  twin loads unchanged into MistralForCausalLM.
- The window convention: transformers' sliding_window = W is swa's [W - 1, 0] (W tokens
  including the query itself); [W, 0] is shown to disagree.
- gpt-oss's eager attention with learned sinks, Gemma 2's attention softcapping and
  BLOOM's ALiBi bias against the twin's attention functions on the same q, k, v.
- Gradients of the loss reach every parameter of a twin with every feature on, and agree
  with central finite differences in float64.
"""
import math
import os
import types

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing may be fetched: every model here is built locally
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest
import torch
import transformers
from transformers import MistralConfig, MistralForCausalLM
from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask
from transformers.models.mistral import modeling_mistral

import swa_twin

# The models are tiny: one thread is the fastest, and on a busy 2-core machine torch's
# default of one thread per core spends seconds per call waiting for the other thread.
torch.set_num_threads(1)

# Largest |twin - transformers| allowed, relative to the largest |logit| (or |output|).
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}
WINDOW = 6  # transformers' sliding_window in the Mistral tests; sequences are longer
LENGTH = 40


def relative_error(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max()).item()


@pytest.fixture
def hf_keeps_float64(monkeypatch):
    """transformers runs three steps in float32 even inside a float64 model: RMSNorm
    (hidden_states.to(torch.float32)), the RoPE angles (position_ids.float() * inv_freq)
    and the eager softmax (softmax(..., dtype=torch.float32)). These replacements compute
    the same formulas in the input's dtype so that a float64 comparison can reach 1e-10;
    the masks, weight layout, GQA, residual order and MLP stay transformers' own code."""
    real_softmax = torch.nn.functional.softmax

    def softmax(x, dim=None, _stacklevel=3, dtype=None):
        return real_softmax(x, dim=dim, dtype=None if x.dtype == torch.float64 else dtype)

    def rms_norm_forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))

    def rope_forward(self, x, position_ids):
        dim = self.config.head_dim
        base = self.config.rope_parameters["rope_theta"]
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        freqs = position_ids[..., None].to(torch.float64) * inv_freq
        angles = torch.cat((freqs, freqs), dim=-1)
        return angles.cos().to(x.dtype), angles.sin().to(x.dtype)

    monkeypatch.setattr(torch.nn.functional, "softmax", softmax)
    monkeypatch.setattr(modeling_mistral.MistralRMSNorm, "forward", rms_norm_forward)
    monkeypatch.setattr(modeling_mistral.MistralRotaryEmbedding, "forward", rope_forward)


def for_dtype(request, dtype):
    if dtype == torch.float64:
        request.getfixturevalue("hf_keeps_float64")


# ------------------------------------------------------------------------------ Mistral


def mistral(sliding_window, tied, seed, dtype, num_key_value_heads=2, rope_theta=10000.0):
    """A tiny MistralForCausalLM with eager attention and weights of order one (its own
    initializer's std 0.02 would make every logit nearly zero and every check weak)."""
    config = MistralConfig(vocab_size=260, hidden_size=32, intermediate_size=48,
                           num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=num_key_value_heads, head_dim=8,
                           rms_norm_eps=1e-5, tie_word_embeddings=tied,
                           rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
                           sliding_window=sliding_window, attn_implementation="eager")
    model = MistralForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():  # a tied weight is listed once
            noise = torch.randn(parameter.shape, generator=generator)
            if name.endswith("norm.weight"):
                parameter.copy_(1.0 + 0.1 * noise)
            elif name == "model.embed_tokens.weight":
                parameter.copy_(noise)
            else:
                parameter.copy_(noise / math.sqrt(parameter.shape[1]))
    return model.to(dtype)


def twin_config_of(hf_config, window_pair):
    """Section 5's config for a transformers Mistral config, every head on `window_pair`."""
    return {"vocab_size": hf_config.vocab_size, "hidden_size": hf_config.hidden_size,
            "num_hidden_layers": hf_config.num_hidden_layers,
            "num_attention_heads": hf_config.num_attention_heads,
            "num_key_value_heads": hf_config.num_key_value_heads,
            "head_dim": hf_config.head_dim, "intermediate_size": hf_config.intermediate_size,
            "rms_norm_eps": hf_config.rms_norm_eps,
            "rope_theta": hf_config.rope_parameters["rope_theta"],
            "tie_word_embeddings": hf_config.tie_word_embeddings,
            "final_logit_softcapping": 0.0,
            "layers": [{"windows": [list(window_pair)] * hf_config.num_attention_heads}
                       for _ in range(hf_config.num_hidden_layers)]}


def state_of(model):
    """`model`'s own state dict, which has section 5's names (lm_head dropped when tied)."""
    return {name: t for name, t in model.state_dict().items()
            if not (model.config.tie_word_embeddings and name == "lm_head.weight")}


def twin_of(model, window_pair, dtype, attention="reference"):
    config = twin_config_of(model.config, window_pair)
    return swa_twin.TwinModel(config, state_of(model), attention).to(dtype)


def hf_logits(model, tokens):
    with torch.no_grad():
        return model(tokens[None]).logits[0]


def random_tokens(length, seed):
    return torch.randint(0, 256, (length,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tied", [True, False])
def test_sliding_window_w_is_left_w_minus_1(request, dtype, tied):
    # transformers 5.24's sliding window keeps key j for query p iff j > p - W: the W keys
    # p - W + 1 .. p, i.e. swa's [W - 1, 0]. Both candidates are run; only that one agrees.
    for_dtype(request, dtype)
    model = mistral(WINDOW, tied, seed=1, dtype=dtype)
    tokens = random_tokens(LENGTH, seed=2)
    expected = hf_logits(model, tokens)
    with torch.no_grad():
        matching = twin_of(model, [WINDOW - 1, 0], dtype)(tokens)
        one_wider = twin_of(model, [WINDOW, 0], dtype)(tokens)
    assert relative_error(matching, expected) < TOLERANCE[dtype]
    assert relative_error(one_wider, expected) > 1e-3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("tied", [True, False])
def test_full_attention_is_left_minus_1(request, dtype, tied):
    for_dtype(request, dtype)
    model = mistral(None, tied, seed=3, dtype=dtype, num_key_value_heads=1)
    tokens = random_tokens(LENGTH, seed=4)
    with torch.no_grad():
        twin = twin_of(model, [-1, 0], dtype)(tokens)
        sdpa = twin_of(model, [-1, 0], dtype, attention="sdpa")(tokens)
    expected = hf_logits(model, tokens)
    assert relative_error(twin, expected) < TOLERANCE[dtype]
    assert relative_error(sdpa, expected) < TOLERANCE[dtype]


@pytest.mark.parametrize("attention", ["reference", "sdpa"])
def test_packed_stream_is_each_document_alone(hf_keeps_float64, attention):
    # One packed call of the twin against transformers run on each document by itself:
    # nothing crosses a document boundary and RoPE restarts at 0 (an empty document too).
    dtype = torch.float64
    model = mistral(WINDOW, True, seed=5, dtype=dtype)
    lengths = [13, 0, 1, 21]
    tokens = random_tokens(sum(lengths), seed=6)
    cu_seqlens = [0]
    for n in lengths:
        cu_seqlens.append(cu_seqlens[-1] + n)
    twin = twin_of(model, [WINDOW - 1, 0], dtype, attention)
    with torch.no_grad():
        packed = twin(tokens, cu_seqlens=cu_seqlens)
    expected = torch.cat([hf_logits(model, tokens[a:b])
                          for a, b in zip(cu_seqlens[:-1], cu_seqlens[1:]) if b > a])
    assert relative_error(packed, expected) < TOLERANCE[dtype]


def test_layer_rope_theta_overrides_the_model_one(hf_keeps_float64):
    dtype = torch.float64
    model = mistral(WINDOW, True, seed=25, dtype=dtype, rope_theta=50.0)
    tokens = random_tokens(LENGTH, seed=26)
    config = twin_config_of(model.config, [WINDOW - 1, 0])
    config["rope_theta"] = 10000.0
    for layer in config["layers"]:
        layer["rope_theta"] = 50.0
    twin = swa_twin.TwinModel(config, state_of(model)).to(dtype)
    with torch.no_grad():
        assert relative_error(twin(tokens), hf_logits(model, tokens)) < TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_checkpoint_loads_unchanged_into_mistral(tmp_path, dtype):
    # A swa checkpoint with one window for every head and no gates is a Mistral state dict.
    config = swa_twin.random_config(7, window=WINDOW, tie_word_embeddings=False)
    path = tmp_path / "model.safetensors"
    swa_twin.write_random_checkpoint(path, config, seed=8, dtype=dtype)
    loaded_config, state = swa_twin.load_checkpoint(path)
    assert loaded_config == config
    assert all(t.dtype == dtype for t in state.values())
    model = mistral(WINDOW, False, seed=0, dtype=torch.float32)
    model.load_state_dict(state, strict=True)
    tokens = random_tokens(LENGTH, seed=9)
    with torch.no_grad():
        twin = swa_twin.TwinModel(loaded_config, state)(tokens)
    assert relative_error(twin, hf_logits(model, tokens)) < TOLERANCE[torch.float32]


# ------------------------------------------------------- attention functions, one layer


def attention_inputs(Hq, Hkv, D, L, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    q = torch.randn(L, Hq, D, generator=generator, dtype=dtype)
    k = torch.randn(L, Hkv, D, generator=generator, dtype=dtype)
    v = torch.randn(L, Hkv, D, generator=generator, dtype=dtype)
    return q, k, v


def bhld(x):
    """[L, H, D] -> transformers' [1, H, L, D]."""
    return x.transpose(0, 1)[None]


def twin_attention(q, k, v, windows, attention="reference", cap=0.0, slopes=None, sinks=None):
    L = q.shape[0]
    segments, positions = swa_twin.segments_and_positions(L, None)
    visible = swa_twin.visibility(segments, positions, windows, sink_tokens=0)
    distance = (positions[:, None] - positions[None, :]).abs().to(q.dtype)
    attend = swa_twin.attention_reference if attention == "reference" else swa_twin.attention_sdpa
    return attend(q, k, v, visible, scale=q.shape[-1] ** -0.5, cap=cap, slopes=slopes,
                  distance=distance, sinks=sinks)


@pytest.mark.skipif(not hasattr(transformers, "GptOssConfig"), reason="no gpt-oss in transformers")
@pytest.mark.parametrize("layer_type", ["sliding_attention", "full_attention"])
@pytest.mark.parametrize("attention", ["reference", "sdpa"])
def test_gpt_oss_attention_with_learned_sinks(layer_type, attention):
    # gpt-oss's whole model differs from section 5 (MoE, biases, YaRN), so only its eager
    # attention function is compared, on the same q, k, v and sinks, with the mask that
    # transformers builds for that layer type: sliding_window = W is [W - 1, 0] there too.
    from transformers.models.gpt_oss import modeling_gpt_oss
    Hq, Hkv, D, L, W = 4, 1, 8, 29, 5
    config = transformers.GptOssConfig(num_hidden_layers=2, hidden_size=32, head_dim=D,
                                       num_attention_heads=Hq, num_key_value_heads=Hkv,
                                       sliding_window=W, num_local_experts=2,
                                       num_experts_per_tok=1, vocab_size=260,
                                       intermediate_size=32, attn_implementation="eager")
    assert config.layer_types[:2] == ["sliding_attention", "full_attention"]
    make_mask = (create_sliding_window_causal_mask if layer_type == "sliding_attention"
                 else create_causal_mask)
    mask = make_mask(config=config, inputs_embeds=torch.zeros(1, L, 32, dtype=torch.float64),
                     attention_mask=None, cache=None, position_ids=torch.arange(L)[None])
    q, k, v = attention_inputs(Hq, Hkv, D, L, seed=10)
    sinks = 2.0 * torch.randn(Hq, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    module = types.SimpleNamespace(num_key_value_groups=Hq // Hkv, sinks=sinks, training=False)
    expected, _ = modeling_gpt_oss.eager_attention_forward(
        module, bhld(q), bhld(k), bhld(v), mask, scaling=D ** -0.5)
    window = [W - 1, 0] if layer_type == "sliding_attention" else [-1, 0]
    twin = twin_attention(q, k, v, [window] * Hq, attention, sinks=sinks)
    assert relative_error(twin, expected[0]) < TOLERANCE[torch.float64]


@pytest.mark.parametrize("cap", [2.0, 50.0])
def test_gemma2_attention_softcapping(hf_keeps_float64, cap):
    # Gemma 2 caps the scaled scores with cap * tanh(s / cap) before adding the mask.
    from transformers.models.gemma2 import modeling_gemma2
    Hq, Hkv, D, L, W = 4, 2, 8, 23, 4
    q, k, v = attention_inputs(Hq, Hkv, D, L, seed=12)
    q = 3.0 * q  # scores of a few units, so that a cap of 2 bends them
    i = torch.arange(L)
    keep = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - W)
    mask = torch.zeros(L, L, dtype=torch.float64).masked_fill(~keep, float("-inf"))[None, None]
    module = types.SimpleNamespace(num_key_value_groups=Hq // Hkv, head_dim=D, training=False)
    expected, _ = modeling_gemma2.eager_attention_forward(
        module, bhld(q), bhld(k), bhld(v), mask, scaling=D ** -0.5, softcap=cap)
    twin = twin_attention(q, k, v, [[W - 1, 0]] * Hq, cap=cap)
    assert relative_error(twin, expected[0]) < TOLERANCE[torch.float64]


@pytest.mark.parametrize("num_heads", [4, 8])
@pytest.mark.parametrize("attention", ["reference", "sdpa"])
def test_bloom_alibi_bias(hf_keeps_float64, num_heads, attention):
    # BLOOM adds slope_h * j to a causal row; softmax is unchanged by the row constant
    # slope_h * p, so that is section 1's -slope_h * |p - j| with the same slopes (for a
    # power-of-two head count, where BLOOM's slopes are 2^(-8 (h + 1) / Hq)).
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor
    D, L = 8, 19
    q, k, v = attention_inputs(num_heads, num_heads, D, L, seed=13)
    bias = build_alibi_tensor(torch.ones(1, L), num_heads, torch.float64)  # [Hq, 1, L]
    i = torch.arange(L)
    causal = torch.zeros(L, L, dtype=torch.float64).masked_fill(i[None, :] > i[:, None], float("-inf"))
    module = types.SimpleNamespace(num_key_value_groups=1, training=False)
    expected, _ = modeling_mistral.eager_attention_forward(
        module, bhld(q), bhld(k), bhld(v), (bias + causal)[None], scaling=D ** -0.5)
    twin = twin_attention(q, k, v, [[-1, 0]] * num_heads, attention,
                          slopes=swa_twin.alibi_slopes(num_heads))
    assert relative_error(twin, expected[0]) < TOLERANCE[torch.float64]


# ---------------------------------------------------------------- the twin by itself


def every_feature_config():
    """Three layers: mixed windows, gates, learned sinks, sink tokens, an ALiBi layer,
    attention and final softcaps, a per-layer rope_theta, an untied lm_head."""
    return swa_twin.random_config(
        14, mixed_windows=True, num_hidden_layers=3, tie_word_embeddings=False,
        final_logit_softcapping=15.0,
        layers=[{"gated_fusion": True, "learned_sinks": True, "sink_tokens": 2,
                 "rope_theta": 500.0},
                {"alibi": True, "attn_logit_softcapping": 5.0, "gated_fusion": True},
                {"learned_sinks": True, "attn_logit_softcapping": 8.0, "sink_tokens": 1}])


def test_gradients_reach_every_parameter_and_match_finite_differences():
    config = every_feature_config()
    model = swa_twin.TwinModel(config, swa_twin.random_state(config, seed=15)).to(torch.float64)
    tokens = random_tokens(30, seed=16)
    targets = torch.roll(tokens, -1)
    targets[::7] = swa_twin.PAD
    cu_seqlens = [0, 17, 30]
    model.loss(tokens, targets, cu_seqlens).backward()
    names = dict(model.named_parameters())
    assert set(names) == set(swa_twin.tensor_shapes(config))
    generator = torch.Generator().manual_seed(17)
    step = 1e-6
    for name, parameter in names.items():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().max() > 0, name
        # Directional derivative along a random direction u: <grad, u> against
        # (loss(p + step u) - loss(p - step u)) / (2 step).
        direction = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            parameter += step * direction
            above = model.loss(tokens, targets, cu_seqlens).item()
            parameter -= 2 * step * direction
            below = model.loss(tokens, targets, cu_seqlens).item()
            parameter += step * direction
        numeric = (above - below) / (2 * step)
        analytic = (parameter.grad * direction).sum().item()
        assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), name


@pytest.mark.parametrize("attention", ["reference", "sdpa"])
def test_packed_stream_is_each_document_alone_with_every_feature(attention):
    # Sink tokens are the first keys of each document and ALiBi distances stay inside it.
    config = every_feature_config()
    if attention == "sdpa":
        for layer in config["layers"]:
            layer["attn_logit_softcapping"] = 0.0
    model = swa_twin.TwinModel(config, swa_twin.random_state(config, seed=27), attention)
    model = model.to(torch.float64)
    tokens = random_tokens(31, seed=28)
    cu_seqlens = [0, 11, 11, 12, 31]
    with torch.no_grad():
        packed = model(tokens, cu_seqlens)
        alone = torch.cat([model(tokens[a:b]) for a, b in zip(cu_seqlens[:-1], cu_seqlens[1:])])
    assert relative_error(packed, alone) < TOLERANCE[torch.float64]


def test_visibility_matches_the_worked_example_of_windows_md():
    # docs/WINDOWS.md: L = 6, window (2, 0); then the same with sink_tokens = 1, where key 0
    # joins every row (still causal), and a second document that starts at token 4.
    example = torch.tensor([[1, 0, 0, 0, 0, 0],
                            [1, 1, 0, 0, 0, 0],
                            [1, 1, 1, 0, 0, 0],
                            [0, 1, 1, 1, 0, 0],
                            [0, 0, 1, 1, 1, 0],
                            [0, 0, 0, 1, 1, 1]], dtype=torch.bool)
    segments, positions = swa_twin.segments_and_positions(6, None)
    assert torch.equal(swa_twin.visibility(segments, positions, [[2, 0]], 0)[0], example)
    with_sink = example.clone()
    with_sink[:, 0] = True
    assert torch.equal(swa_twin.visibility(segments, positions, [[2, 0]], 1)[0], with_sink)
    segments, positions = swa_twin.segments_and_positions(6, [0, 4, 6])
    packed = torch.zeros(6, 6, dtype=torch.bool)
    packed[:4, :4] = with_sink[:4, :4]
    packed[4:, 4:] = with_sink[:2, :2]
    assert torch.equal(swa_twin.visibility(segments, positions, [[2, 0]], 1)[0], packed)


def test_gated_fusion_scales_each_head_by_its_groups_gate():
    # With gate.weight = 0 every token's gate of group g is sigmoid(bias[g]); that is an
    # ungated layer whose o_proj columns of head h are scaled by sigmoid(bias[g(h)]).
    # Windows [[3, 0], [-1, 0], [3, 0], [1, 0]] form groups 0, 1, 0, 2 (by first head).
    windows = [[3, 0], [-1, 0], [3, 0], [1, 0]]
    gated = swa_twin.random_config(29, num_hidden_layers=1,
                                   layers=[{"windows": windows, "gated_fusion": True}])
    state = swa_twin.random_state(gated, seed=30)
    assert state["model.layers.0.self_attn.gate.bias"].shape == (3,)
    state["model.layers.0.self_attn.gate.weight"].zero_()
    gate = torch.sigmoid(state.pop("model.layers.0.self_attn.gate.bias"))
    state_with_gate = dict(state, **{"model.layers.0.self_attn.gate.bias": torch.logit(gate)})
    ungated = swa_twin.random_config(29, num_hidden_layers=1, layers=[{"windows": windows}])
    state.pop("model.layers.0.self_attn.gate.weight")
    o_proj = state["model.layers.0.self_attn.o_proj.weight"].clone()  # [d, Hq * D]
    D = gated["head_dim"]
    for head, group in enumerate([0, 1, 0, 2]):
        o_proj[:, head * D:(head + 1) * D] *= gate[group]
    state["model.layers.0.self_attn.o_proj.weight"] = o_proj
    tokens = random_tokens(15, seed=31)
    with torch.no_grad():
        expected = swa_twin.TwinModel(ungated, state).to(torch.float64)(tokens)
        actual = swa_twin.TwinModel(gated, state_with_gate).to(torch.float64)(tokens)
    assert relative_error(actual, expected) < 1e-6


def test_loss_is_mean_cross_entropy_over_non_pad_targets():
    config = swa_twin.random_config(18, window=4)
    model = swa_twin.TwinModel(config, swa_twin.random_state(config, seed=19)).to(torch.float64)
    tokens = random_tokens(12, seed=20)
    targets = torch.roll(tokens, -1)
    targets[[0, 5, 11]] = swa_twin.PAD
    with torch.no_grad():
        probabilities = torch.softmax(model(tokens), dim=-1)
        loss = model.loss(tokens, targets).item()
    scored = [i for i in range(12) if targets[i] != swa_twin.PAD]
    expected = -sum(math.log(probabilities[i, targets[i]].item()) for i in scored) / len(scored)
    assert abs(loss - expected) < 1e-12


def test_sdpa_mode_matches_reference_and_rejects_softcapping():
    config = every_feature_config()
    for layer in config["layers"]:
        layer["attn_logit_softcapping"] = 0.0
    state = swa_twin.random_state(config, seed=21)
    tokens = random_tokens(26, seed=22)
    with torch.no_grad():
        reference = swa_twin.TwinModel(config, state).to(torch.float64)(tokens, [0, 9, 26])
        sdpa = swa_twin.TwinModel(config, state, attention="sdpa").to(torch.float64)(tokens, [0, 9, 26])
    assert relative_error(sdpa, reference) < TOLERANCE[torch.float64]
    config["layers"][1]["attn_logit_softcapping"] = 5.0
    with pytest.raises(ValueError, match="attn_logit_softcapping"):
        swa_twin.TwinModel(config, state, attention="sdpa")(tokens)


def test_sdpa_by_window_matches_reference_with_gradients():
    """Layers without ALiBi, sinks or softcap run SDPA once per distinct window; logits
    and every gradient equal the reference path's."""
    config = swa_twin.random_config(31, mixed_windows=True)
    for layer in config["layers"]:
        layer.update(alibi=False, learned_sinks=False, attn_logit_softcapping=0.0)
    state = swa_twin.random_state(config, seed=32)
    tokens = random_tokens(30, seed=33)
    targets = random_tokens(30, seed=34)
    results = []
    for attention in ("reference", "sdpa"):
        model = swa_twin.TwinModel(config, state, attention=attention).to(torch.float64)
        loss = model.loss(tokens, targets, [0, 11, 30])
        loss.backward()
        results.append((loss.item(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    assert abs(results[0][0] - results[1][0]) < 1e-12 * abs(results[0][0])
    for name, grad in results[0][1].items():
        assert relative_error(results[1][1][name], grad) < TOLERANCE[torch.float64], name


def test_bad_checkpoints_are_rejected_by_name(tmp_path):
    config = swa_twin.random_config(23, window=4)
    state = swa_twin.random_state(config, seed=24)
    state["model.layers.1.mlp.up_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="model.layers.1.mlp.up_proj.weight"):
        swa_twin.TwinModel(config, state)
    del state["model.layers.1.mlp.up_proj.weight"]
    with pytest.raises(ValueError, match="missing"):
        swa_twin.TwinModel(config, state)
    bad = dict(config, layers=[{"windows": [[-2, 0]] * 4}] * 2)
    with pytest.raises(ValueError, match=r"layers\[0\].windows"):
        swa_twin.check_config(bad)
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="config"):
        swa_twin.load_checkpoint(tmp_path / "plain.safetensors")
