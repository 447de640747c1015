"""swa's transformers backend (swa.transformers.register, attn_implementation="swa") against
transformers' own eager attention, on tiny random models built from their config classes
(nothing is downloaded): Mistral, Qwen 2 with sliding layers, Gemma 2 (attention softcap),
Gemma 3 and gpt-oss (learned sinks). Every model has a sliding window of 8 and sequences of
40 tokens, so the window hides most keys, and GQA. Checked: logits, a 32-token greedy
generate() through the KV cache, and the gradients of every parameter after one training
step. Pinned: transformers 5.24.0 (python/requirements-dev.txt).

Run: .venv/bin/python -m pytest -q tests/python/test_hf_backend.py
"""

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import swa  # noqa: E402

WINDOW = 8
SEQ = 40
VOCAB = 96
COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
              sliding_window=WINDOW, attention_dropout=0.0, pad_token_id=None, bos_token_id=None,
              eos_token_id=None)
SLIDING_FULL = ["sliding_attention", "full_attention", "sliding_attention"]


def _mistral():
    return transformers.MistralConfig(**COMMON), transformers.MistralForCausalLM


def _qwen2():
    cfg = transformers.Qwen2Config(**COMMON, use_sliding_window=True, max_window_layers=0,
                                   layer_types=SLIDING_FULL)
    return cfg, transformers.Qwen2ForCausalLM


def _gemma2():
    # A small softcap so that it bends the random model's scores.
    cfg = transformers.Gemma2Config(**COMMON, layer_types=SLIDING_FULL, attn_logit_softcapping=0.5,
                                    final_logit_softcapping=None, query_pre_attn_scalar=6)
    return cfg, transformers.Gemma2ForCausalLM


def _gemma3():
    cfg = transformers.Gemma3TextConfig(**COMMON, layer_types=SLIDING_FULL, query_pre_attn_scalar=6)
    return cfg, transformers.Gemma3ForCausalLM


def _gpt_oss():
    cfg = transformers.GptOssConfig(**COMMON, layer_types=SLIDING_FULL, num_local_experts=4,
                                    num_experts_per_tok=2)
    return cfg, transformers.GptOssForCausalLM


MODELS = {"mistral": _mistral, "qwen2": _qwen2, "gemma2": _gemma2, "gemma3": _gemma3, "gpt_oss": _gpt_oss}


@pytest.fixture(scope="module", autouse=True)
def _registered():
    assert swa.transformers.register() == "swa"


def _model(name):
    cfg, cls = MODELS[name]()
    torch.manual_seed(0)
    model = cls(cfg).float()
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "sinks"):  # gpt-oss: sinks far from zero, so they matter
                module.sinks.normal_(0.0, 1.0)
    return model


def _ids(batch=2, seq=SEQ, seed=1):
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


def _logits(model, impl, ids):
    model.set_attn_implementation(impl)
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("name", list(MODELS))
def test_logits_match_eager(name):
    model = _model(name).eval()
    ids = _ids()
    eager = _logits(model, "eager", ids)
    ours = _logits(model, "swa", ids)
    torch.testing.assert_close(ours, eager, rtol=1e-4, atol=2e-5)
    # The window matters: a window wider than the sequence gives other logits.
    cfg = model.config
    saved = cfg.sliding_window
    cfg.sliding_window = 4 * SEQ
    try:
        wide = _logits(_rebuilt(model), "eager", ids)
    finally:
        cfg.sliding_window = saved
    assert (wide - eager).abs().max() > 1e-3


def _rebuilt(model):
    """The same weights in a model built from the (edited) config, so that every layer
    reads its window again."""
    fresh = type(model)(model.config).float().eval()
    fresh.load_state_dict(model.state_dict())
    return fresh


@pytest.mark.parametrize("name", list(MODELS))
def test_generate_matches_eager(name):
    model = _model(name).eval()
    ids = _ids(batch=1, seq=12, seed=2)
    out = {}
    for impl in ("eager", "swa"):
        model.set_attn_implementation(impl)
        out[impl] = model.generate(ids, max_new_tokens=32, min_new_tokens=32, do_sample=False,
                                   output_scores=True, return_dict_in_generate=True)
    assert out["swa"].sequences.shape == (1, 12 + 32)
    assert torch.equal(out["swa"].sequences, out["eager"].sequences)
    # 44 tokens with a window of 8: the cache's sliding layers are past the window.
    for ours, eager in zip(out["swa"].scores, out["eager"].scores):
        torch.testing.assert_close(ours, eager, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_training_step_matches_eager(name):
    model = _model(name).train()
    ids = _ids(seed=3)
    grads = {}
    losses = {}
    for impl in ("eager", "swa"):
        model.set_attn_implementation(impl)
        model.zero_grad(set_to_none=True)
        loss = model(ids, labels=ids).loss
        loss.backward()
        losses[impl] = loss.detach()
        grads[impl] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    torch.testing.assert_close(losses["swa"], losses["eager"], rtol=1e-5, atol=1e-6)
    assert grads["swa"].keys() == grads["eager"].keys()
    attention_params = [n for n in grads["eager"] if "self_attn" in n]
    assert attention_params
    for n in grads["eager"]:
        torch.testing.assert_close(grads["swa"][n], grads["eager"][n], rtol=1e-3, atol=1e-6, msg=n)
    if name == "gpt_oss":
        assert any(n.endswith("sinks") for n in grads["swa"])


def _left_padded(batch=2, seq=24, seed=4):
    ids = _ids(batch=batch, seq=seq, seed=seed)
    mask = torch.ones_like(ids)
    mask[0, :5] = 0  # row 0: 5 pads, then 19 tokens (past the window of 8)
    mask[1, :1] = 0
    return ids, mask


@pytest.mark.parametrize("name", list(MODELS))
def test_left_padded_batch_matches_eager(name):
    """Padding runs as swa's varlen packing: the real positions' logits, and a greedy
    generate() of a left-padded batch, equal eager's."""
    model = _model(name).eval()
    ids, mask = _left_padded()
    logits = {}
    for impl in ("eager", "swa"):
        model.set_attn_implementation(impl)
        with torch.no_grad():
            logits[impl] = model(ids, attention_mask=mask).logits
    real = mask.bool()
    torch.testing.assert_close(logits["swa"][real], logits["eager"][real], rtol=1e-4, atol=2e-5)
    out = {}
    for impl in ("eager", "swa"):
        model.set_attn_implementation(impl)
        out[impl] = model.generate(ids, attention_mask=mask, max_new_tokens=16, min_new_tokens=16,
                                   do_sample=False, output_scores=True, return_dict_in_generate=True)
    assert torch.equal(out["swa"].sequences, out["eager"].sequences)
    for ours, eager in zip(out["swa"].scores, out["eager"].scores):
        torch.testing.assert_close(ours, eager, rtol=1e-4, atol=2e-5)


def test_right_padding_and_unpadded_mask():
    model = _model("qwen2").eval()
    ids = _ids(batch=2, seq=20)
    mask = torch.ones_like(ids)
    mask[1, 13:] = 0
    logits = {}
    for impl in ("eager", "swa"):
        model.set_attn_implementation(impl)
        with torch.no_grad():
            logits[impl] = model(ids, attention_mask=mask, use_cache=False).logits
    torch.testing.assert_close(logits["swa"][mask.bool()], logits["eager"][mask.bool()], rtol=1e-4, atol=2e-5)
    # A mask without padding is the unmasked case.
    full = model(ids, attention_mask=torch.ones_like(ids)).logits
    torch.testing.assert_close(full, _logits(model, "eager", ids), rtol=1e-4, atol=2e-5)


def test_unsupported_masks_raise():
    model = _model("mistral").eval()
    model.set_attn_implementation("swa")
    ids = _ids(batch=1, seq=16)
    restart = torch.cat([torch.arange(8), torch.arange(8)])[None]  # two packed documents
    with pytest.raises(NotImplementedError, match="packed sequences"):
        model(ids, position_ids=restart, use_cache=False)
    holes = torch.ones_like(ids)
    holes[0, 6] = 0  # a hole inside the row: not one run of real tokens
    with pytest.raises(NotImplementedError, match="one run"):
        model(ids, attention_mask=holes)
