"""The README's Python examples run as written, against the installed package: the
PyTorch one gives gradients that match a float64 dense-mask computation, and the
transformers one really runs on swa's operator and generates what eager attention
generates.

Run: .venv/bin/python -m pytest -q tests/python/test_readme_examples.py
"""

import pathlib
import re

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from test_package import reference_dense  # noqa: E402

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_torch_and_a_transformers_example():
    blocks = python_blocks()
    assert any("swa.attention(" in b for b in blocks)
    assert any("swa.transformers.register()" in b for b in blocks)


def test_torch_example_matches_dense_reference():
    block = next(b for b in python_blocks() if "swa.attention(" in b)
    ns = {}
    torch.manual_seed(0)
    exec(compile(block, "README.md", "exec"), ns)
    q, k, v, out, window = ns["q"], ns["k"], ns["v"], ns["out"], ns["window"]
    qd, kd, vd = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref, _ = reference_dense(qd, kd, vd, window=window, causal=True)
    ref.sum().backward()
    torch.testing.assert_close(out.detach().double(), ref.detach(), atol=1e-5, rtol=1e-5)
    for mine, theirs in ((q.grad, qd.grad), (k.grad, kd.grad), (v.grad, vd.grad)):
        torch.testing.assert_close(mine.double(), theirs, atol=1e-4, rtol=1e-4)


def test_transformers_example_runs_on_swa(monkeypatch, capsys):
    import swa.torch_op

    block = next(b for b in python_blocks() if "swa.transformers.register()" in b)
    calls = []
    real = swa.torch_op.attention_fwd

    def counted(*args):
        calls.append(args[0].shape)
        return real(*args)

    monkeypatch.setattr(swa.torch_op, "attention_fwd", counted)
    ns = {}
    exec(compile(block, "README.md", "exec"), ns)
    printed = capsys.readouterr().out
    model = ns["model"]
    assert model.config._attn_implementation == "swa"
    # Both layers, at the prefill and at each of the 31 decode steps after the first token.
    assert len(calls) == 2 * 32, len(calls)
    model.set_attn_implementation("eager")
    with torch.no_grad():
        eager = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=32, do_sample=False)
    assert str(eager) == printed.strip()
