"""swa.hf.to_mistral_config: a swa checkpoint with one window for every head (the uniform
preset's shape: every head [W - 1, 0], RoPE, no gates) loads into transformers'
MistralForCausalLM unchanged, and its logits equal swa's own model (libswa's
swa_model_logits through ctypes, the helper of test_model_twin.py) under both the eager
and the "swa" attention implementations. test_model_twin.py already checks a hand-written
Mistral config the same way; this checks the package's helper, and that it refuses what
Mistral cannot express.

Run: .venv/bin/python -m pytest -q tests/python/test_hf_interop.py
"""

import json
import os
import pathlib
import shutil
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import swa  # noqa: E402
import swa_twin  # noqa: E402

WINDOW = 6


@pytest.fixture(scope="module")
def lib():
    # The installed package's libswa.so also exports the model API (unless SWA_LIB says otherwise).
    os.environ.setdefault("SWA_LIB", swa._lib._library_path())
    import test_model_twin
    return test_model_twin


def _checkpoint(tmp_path, tied, **layer):
    config = swa_twin.random_config(21, window=WINDOW, tie_word_embeddings=tied, num_hidden_layers=2,
                                    **({"layers": layer} if layer else {}))
    path = tmp_path / "swa.safetensors"
    swa_twin.write_random_checkpoint(path, config, seed=22)
    return config, path


@pytest.mark.parametrize("tied", [True, False])
def test_uniform_checkpoint_loads_into_mistral(lib, tmp_path, tied):
    config, path = _checkpoint(tmp_path, tied)
    mistral = swa.hf.to_mistral_config(str(path))
    assert mistral.sliding_window == WINDOW
    assert swa.windows.from_hf(mistral.sliding_window) == tuple(config["layers"][0]["windows"][0])
    directory = tmp_path / "hf"
    directory.mkdir()
    shutil.copy(path, directory / "model.safetensors")
    mistral.save_pretrained(directory)
    swa.transformers.register()
    tokens, _, _ = lib.packed_batch(23, [40], config["vocab_size"])  # 40 tokens, window 6
    expected = lib.SwaModel(lib.load_library(), path).logits(tokens.numpy())
    for impl in ("eager", "swa"):
        model, info = transformers.MistralForCausalLM.from_pretrained(
            directory, output_loading_info=True, attn_implementation=impl, dtype=torch.float32)
        assert not any(info.values()), f"loading was not exact: {info}"
        with torch.no_grad():
            logits = model.eval()(tokens[None]).logits[0]
        error = lib.relative_error(expected, logits)
        assert error <= 1e-5, f"{impl}: {error:.1e}"


def test_config_forms_agree(tmp_path):
    config, path = _checkpoint(tmp_path, True)
    from_path = swa.hf.to_mistral_config(str(path)).to_dict()
    assert swa.hf.to_mistral_config(config).to_dict() == from_path
    assert swa.hf.to_mistral_config(json.dumps(config)).to_dict() == from_path
    global_config = swa_twin.random_config(1)  # every head [-1, 0]
    assert swa.hf.to_mistral_config(global_config).sliding_window is None


@pytest.mark.parametrize("layer, message", [
    ({"gated_fusion": True}, "gated_fusion"),
    ({"learned_sinks": True}, "learned_sinks"),
    ({"alibi": True}, "alibi"),
    ({"attn_logit_softcapping": 5.0}, "attn_logit_softcapping"),
    ({"windows": [[5, 0], [-1, 0], [5, 0], [5, 0]]}, "windows"),
])
def test_refuses_what_mistral_cannot_express(layer, message):
    config = swa_twin.random_config(2, window=WINDOW, layers=layer)
    with pytest.raises(ValueError, match=message):
        swa.hf.to_mistral_config(config)
