"""swa.nn.SlidingWindowAttention against the attention block of the independent PyTorch twin
(tests/python/swa_twin.py, written from docs/MODEL.md) with the same weights: outputs and
the gradients of the input and of every parameter, in float32.

Run: .venv/bin/python -m pytest -q tests/python/test_nn.py
"""

import pathlib
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import swa  # noqa: E402
import swa_twin  # noqa: E402

LAYERS = {
    "uniform_rope": {"windows": [[5, 0]] * 4},
    "mixed_gated_sinks": {"windows": [[2, 0], [-1, 0], [2, 0], [6, 0]], "gated_fusion": True,
                          "learned_sinks": True, "sink_tokens": 2, "rope_theta": 500.0},
    "alibi_softcap": {"windows": [[3, 0], [3, 0], [-1, 0], [9, 0]], "alibi": True,
                      "attn_logit_softcapping": 2.0, "gated_fusion": True},
    "global_sinks_softcap": {"windows": [[-1, 0]] * 4, "learned_sinks": True, "attn_logit_softcapping": 3.0},
}


def _pair(name, seed=0):
    """(twin model, its layer-0 attention as swa.nn.SlidingWindowAttention with the same weights)."""
    config = swa_twin.random_config(seed, num_hidden_layers=1, layers=LAYERS[name])
    twin = swa_twin.TwinModel(config, swa_twin.random_state(config, seed=seed + 1))
    module = swa.nn.SlidingWindowAttention.from_swa_config(config, 0)
    missing, unexpected = module.load_state_dict(twin.model.layers[0].self_attn.state_dict(), strict=True)
    assert not missing and not unexpected
    return twin, module


def _twin_block(twin, h, cu_seqlens=None):
    segments, positions = swa_twin.segments_and_positions(h.shape[0], cu_seqlens)
    return twin.attention_block(0, h, segments, positions)


@pytest.mark.parametrize("name", list(LAYERS))
def test_outputs_and_gradients_match_the_twin(name):
    twin, module = _pair(name)
    L, d = 37, twin.config["hidden_size"]
    h = torch.randn(L, d, generator=torch.Generator().manual_seed(5))
    h_twin = h.clone().requires_grad_()
    h_ours = h.clone()[None].requires_grad_()
    expected = _twin_block(twin, h_twin)
    actual = module(h_ours)
    torch.testing.assert_close(actual[0], expected, rtol=1e-4, atol=1e-5)
    weight = torch.randn(L, d, generator=torch.Generator().manual_seed(6))
    (expected * weight).sum().backward()
    (actual[0] * weight).sum().backward()
    torch.testing.assert_close(h_ours.grad[0], h_twin.grad, rtol=1e-4, atol=1e-5)
    twin_params = dict(twin.model.layers[0].self_attn.named_parameters())
    ours = dict(module.named_parameters())
    assert ours.keys() == twin_params.keys()
    for p, param in ours.items():
        torch.testing.assert_close(param.grad, twin_params[p].grad, rtol=1e-4, atol=1e-5, msg=p)


def test_batch_and_packed_documents():
    twin, module = _pair("mixed_gated_sinks", seed=3)
    d = twin.config["hidden_size"]
    x = torch.randn(2, 20, d, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        batched = module(x)
        for b in range(2):
            torch.testing.assert_close(batched[b], _twin_block(twin, x[b]), rtol=1e-4, atol=1e-5)
        cu = [0, 7, 20, 33]
        packed = torch.randn(1, 33, d, generator=torch.Generator().manual_seed(8))
        torch.testing.assert_close(module(packed, cu_seqlens=cu)[0], _twin_block(twin, packed[0], cu),
                                   rtol=1e-4, atol=1e-5)


def test_the_window_matters():
    twin, module = _pair("uniform_rope")
    x = torch.randn(1, 30, twin.config["hidden_size"], generator=torch.Generator().manual_seed(9))
    wide = swa.nn.SlidingWindowAttention(twin.config["hidden_size"], 4, num_kv_heads=2, head_dim=8)
    wide.load_state_dict(module.state_dict())
    with torch.no_grad():
        assert (wide(x) - module(x)).abs().max() > 1e-3


def test_bad_arguments():
    with pytest.raises(ValueError, match="multiple"):
        swa.nn.SlidingWindowAttention(32, 4, num_kv_heads=3)
    with pytest.raises(ValueError, match="windows has 3 entries"):
        swa.nn.SlidingWindowAttention(32, 4, windows=[(1, 0)] * 3)
    with pytest.raises(ValueError, match="x must be"):
        swa.nn.SlidingWindowAttention(32, 4)(torch.zeros(2, 3, 16))
