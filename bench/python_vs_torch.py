#!/usr/bin/env python3
"""swa's Python package against what a PyTorch user runs on the CPU, in f32:

  (a) forward, N=16384, W=1024, H=8, D=128: swa.attention against FlexAttention compiled
      with torch.compile, under a sliding-window BlockMask (create_block_mask);
  (b) forward + backward, N=8192, W=512: swa.attention (the torch operator, autograd)
      against scaled_dot_product_attention with a boolean band mask;
  (c) prefill of a Mistral-shaped model (2 layers, d 4096, 32 heads over 8 kv heads,
      F 14336, sliding_window 4096) at 8k tokens: attn_implementation="swa" against "sdpa".

Both sides run in this process on the same threads (torch.set_num_threads(os.cpu_count()),
swa num_threads=0: every core), one warm-up call each (which also compiles FlexAttention),
then the sides alternate, `--repeats` times, and each keeps its best time. Each case first
checks that both sides agree. Prints the times and the ratio torch / swa (> 1: swa is
faster) and writes them with --json. --quick shrinks every shape (to check the script).

usage: bench/python_vs_torch.py [--quick] [--repeats 3] [--only a,b,c] [--json FILE]
(--json with --only a subset updates those cases of FILE and keeps the others.)
"""
import argparse
import json
import os
import platform
import time

import torch
import torch.nn.functional as F

import swa

FULL = {"a": dict(n=16384, window=1024, heads=8, dim=128),
        "b": dict(n=8192, window=512, heads=8, dim=128),
        "c": dict(n=8192, layers=2, hidden=4096, heads=32, kv_heads=8, intermediate=14336, window=4096,
                  vocab=32000)}
QUICK = {"a": dict(n=1024, window=128, heads=2, dim=64),
         "b": dict(n=512, window=64, heads=2, dim=64),
         "c": dict(n=256, layers=2, hidden=128, heads=4, kv_heads=2, intermediate=256, window=64, vocab=512)}


def best_alternating(sides, repeats):
    """sides: name -> zero-argument function. One warm-up call each, then `repeats` rounds
    in which the sides take turns; returns name -> best seconds."""
    for fn in sides.values():
        fn()
    best = {name: float("inf") for name in sides}
    for _ in range(repeats):
        for name, fn in sides.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def band(n, window):
    i = torch.arange(n)
    return (i[None, :] <= i[:, None]) & (i[:, None] - i[None, :] < window)  # [n, n], W keys with self


def case_a(s, repeats):
    """Forward: swa.attention vs compiled FlexAttention with a sliding-window BlockMask."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    n, w, h, d = s["n"], s["window"], s["heads"], s["dim"]
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, h, n, d, generator=g) for _ in range(3))  # [B, H, L, D]

    def sliding(b, hh, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx < w)

    mask = create_block_mask(sliding, B=None, H=None, Q_LEN=n, KV_LEN=n, device="cpu")
    flex = torch.compile(flex_attention, dynamic=False)
    window = swa.windows.from_flex_mask(sliding, seq_len=min(n, 4 * w))

    def run_swa():
        with torch.no_grad():
            return swa.attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), window=window,
                                 causal=True)  # BSHD views of the same memory

    def run_flex():
        with torch.no_grad():
            return flex(q, k, v, block_mask=mask)

    diff = (run_swa().transpose(1, 2) - run_flex()).abs().max().item()
    best = best_alternating({"swa": run_swa, "flex_attention_compiled": run_flex}, repeats)
    return dict(shape=s, max_abs_diff=diff, seconds=best, ratio=best["flex_attention_compiled"] / best["swa"])


def case_b(s, repeats):
    """Forward + backward: swa.attention (autograd) vs SDPA with a boolean band mask."""
    n, w, h, d = s["n"], s["window"], s["heads"], s["dim"]
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, h, n, d, generator=g) for _ in range(3))  # [B, H, L, D]
    dout = torch.randn(1, h, n, d, generator=g)
    mask = band(n, w)

    def run(attend):
        qq, kk, vv = (t.clone().requires_grad_() for t in (q, k, v))
        out = attend(qq, kk, vv)
        out.backward(dout)
        return out.detach(), qq.grad

    def swa_side():
        return run(lambda a, b, c: swa.attention(a.transpose(1, 2), b.transpose(1, 2), c.transpose(1, 2),
                                                 window=(w - 1, 0), causal=True).transpose(1, 2))

    def sdpa_side():
        return run(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=mask))

    (o1, g1), (o2, g2) = swa_side(), sdpa_side()
    diff = max((o1 - o2).abs().max().item(), (g1 - g2).abs().max().item())
    best = best_alternating({"swa": swa_side, "sdpa_band_mask": sdpa_side}, repeats)
    return dict(shape=s, max_abs_diff=diff, seconds=best, ratio=best["sdpa_band_mask"] / best["swa"])


def case_c(s, repeats):
    """Prefill of a Mistral-shaped model: attn_implementation="swa" vs "sdpa"."""
    import transformers
    swa.transformers.register()
    cfg = transformers.MistralConfig(vocab_size=s["vocab"], hidden_size=s["hidden"],
                                     intermediate_size=s["intermediate"], num_hidden_layers=s["layers"],
                                     num_attention_heads=s["heads"], num_key_value_heads=s["kv_heads"],
                                     head_dim=s["hidden"] // s["heads"], sliding_window=s["window"],
                                     max_position_embeddings=max(s["n"], 4096))
    torch.manual_seed(2)
    model = transformers.MistralForCausalLM(cfg).float().eval()
    ids = torch.randint(0, s["vocab"], (1, s["n"]), generator=torch.Generator().manual_seed(3))

    def prefill(impl):
        def fn():
            model.set_attn_implementation(impl)
            with torch.no_grad():
                return model(ids, logits_to_keep=1).logits  # a prefill keeps the last logits
        return fn

    diff = (prefill("swa")() - prefill("sdpa")()).abs().max().item()
    best = best_alternating({"swa": prefill("swa"), "sdpa": prefill("sdpa")}, repeats)
    return dict(shape=s, max_abs_diff=diff, seconds=best, ratio=best["sdpa"] / best["swa"])


CASES = {"a": ("forward vs compiled FlexAttention", case_a),
         "b": ("forward+backward vs SDPA band mask", case_b),
         "c": ("Mistral prefill, swa vs sdpa backend", case_c)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, to check the script")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="a,b,c", help="comma-separated cases among a, b, c")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    shapes = QUICK if args.quick else FULL
    results = {"threads": threads, "quick": args.quick, "torch": torch.__version__, "swa": swa.__version__,
               "machine": platform.processor() or platform.machine(), "cases": {}}
    for key in args.only.split(","):
        title, fn = CASES[key]
        r = fn(shapes[key], args.repeats)
        results["cases"][key] = dict(title=title, **r)
        times = ", ".join(f"{name} {t * 1e3:.1f} ms" for name, t in r["seconds"].items())
        print(f"({key}) {title}: {times}; torch/swa = {r['ratio']:.2f}x (max |diff| {r['max_abs_diff']:.1e})",
              flush=True)
    if args.json:
        # A run of some cases keeps the other cases of an earlier run in the same file.
        if os.path.exists(args.json) and set(args.only.split(",")) != set(CASES):
            with open(args.json) as f:
                earlier = json.load(f)
            results["cases"] = {**earlier.get("cases", {}), **results["cases"]}
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
