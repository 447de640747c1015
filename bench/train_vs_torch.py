#!/usr/bin/env python3
"""Training throughput and memory of swa's model against its PyTorch twin.

The twin (tests/python/swa_twin.py) is the same model written from docs/MODEL.md in
PyTorch, with attention as torch.nn.functional.scaled_dot_product_attention under a
boolean band mask: what a PyTorch user writes (PyTorch's CPU FlexAttention has no
backward). Both run the preset mixed_gated at its default size (~9.5M parameters: narrow,
wide and global heads, gated fusion) from one checkpoint, in f32, on the same number of
threads, on one document of `seq` tokens per step.

  * Throughput: a training step's forward and backward (loss and every parameter's
    gradient; the optimizer update is left out on both sides), swa through libswa.so's C
    API, the twin through autograd, timed alternately in this process; each side's best.
    The two losses must agree (a check that both ran the same model).
  * Memory: one step in a fresh child process per (side, length); its peak RSS. The swa
    child does not import torch.

usage: bench/train_vs_torch.py [--build build] [--threads 2] [--quick] [--json FILE]
"""
import argparse
import ctypes as C
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))


def peak_rss_mib():
    """This process's peak resident memory (VmHWM: unlike getrusage's ru_maxrss, it is not
    inherited from the parent across fork and exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmHWM in /proc/self/status")


def batch(seq, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, 256, seq).astype(np.int32)
    targets = rng.integers(0, 256, seq).astype(np.int32)
    return tokens, targets


class SwaModel:
    """A checkpoint loaded through libswa.so; step() = loss and all gradients."""

    def __init__(self, lib_path, checkpoint, threads):
        self.lib = C.CDLL(lib_path)
        self.lib.swa_last_error.restype = C.c_char_p
        self.handle = C.c_void_p()
        self._check(self.lib.swa_model_load(checkpoint.encode(), threads, C.byref(self.handle)))
        floats = C.c_int64()
        self._check(self.lib.swa_model_flat_size(self.handle, C.byref(floats)))
        self.grads = np.zeros(floats.value, dtype=np.float32)

    def _check(self, rc):
        if rc != 0:
            raise RuntimeError(self.lib.swa_last_error().decode())

    def step(self, tokens, targets):
        cu = np.array([0, len(tokens)], dtype=np.int32)
        loss = C.c_double()
        i32 = C.POINTER(C.c_int32)
        self._check(self.lib.swa_model_loss(
            self.handle, tokens.ctypes.data_as(i32), targets.ctypes.data_as(i32), C.c_int64(len(tokens)),
            cu.ctypes.data_as(i32), C.c_int64(1), C.byref(loss), self.grads.ctypes.data_as(C.POINTER(C.c_float))))
        return loss.value


class TwinModel:
    """The twin with SDPA attention; step() = loss.backward()."""

    def __init__(self, checkpoint, threads):
        import torch
        import swa_twin
        torch.set_num_threads(threads)
        config, state = swa_twin.load_checkpoint(checkpoint)
        self.torch = torch
        self.model = swa_twin.TwinModel(config, state, attention="sdpa")

    def step(self, tokens, targets):
        self.model.zero_grad(set_to_none=True)
        loss = self.model.loss(self.torch.from_numpy(tokens.astype(np.int64)),
                               self.torch.from_numpy(targets.astype(np.int64)))
        loss.backward()
        return float(loss)


def make_checkpoint(swa_binary, path):
    import torch
    import swa_twin
    config = json.loads(subprocess.run([swa_binary, "preset", "mixed_gated"], check=True, capture_output=True,
                                       text=True).stdout)
    swa_twin.write_random_checkpoint(path, config, seed=0, dtype=torch.float32)
    return config


def child(args):
    tokens, targets = batch(args.seq)
    if args.child == "swa":
        model = SwaModel(os.path.join(args.build, "libswa.so"), args.checkpoint, args.threads)
    else:
        model = TwinModel(args.checkpoint, args.threads)
    model.step(tokens, targets)
    print(json.dumps({"peak_rss_mib": peak_rss_mib()}))


def child_rss(args, side, seq):
    out = subprocess.run([sys.executable, __file__, "--child", side, "--seq", str(seq), "--build", args.build,
                          "--threads", str(args.threads), "--checkpoint", args.checkpoint],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["exit %d" % out.returncode])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true", help="short sequences (a smoke test)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--child", choices=["swa", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--seq", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    import torch
    with tempfile.TemporaryDirectory() as tmp:
        args.checkpoint = os.path.join(tmp, "model.safetensors")
        make_checkpoint(os.path.join(args.build, "swa"), args.checkpoint)
        lengths = [256, 1024] if args.quick else [2048, 16384]
        swa = SwaModel(os.path.join(args.build, "libswa.so"), args.checkpoint, args.threads)
        twin = TwinModel(args.checkpoint, args.threads)
        rows = []
        for seq in lengths:
            tokens, targets = batch(seq)
            reps = 3 if seq <= 4096 else 2
            best = {"swa": float("inf"), "torch": float("inf")}
            losses = {}
            for rep in range(reps + 1):  # the first round warms both up
                for name, model in (("swa", swa), ("torch", twin)):
                    t0 = time.perf_counter()
                    losses[name] = model.step(tokens, targets)
                    seconds = time.perf_counter() - t0
                    print(f"seq {seq} round {rep}: {name} {seconds:.2f} s (loss {losses[name]:.5f})", flush=True)
                    if rep > 0:
                        best[name] = min(best[name], seconds)
            rel = abs(losses["swa"] - losses["torch"]) / abs(losses["torch"])
            if rel > 1e-4:
                raise SystemExit(f"the losses differ at seq {seq}: swa {losses['swa']}, torch {losses['torch']}")
            rows.append({"seq": seq, "swa_seconds": best["swa"], "torch_seconds": best["torch"],
                         "swa_tokens_per_second": seq / best["swa"], "torch_tokens_per_second": seq / best["torch"],
                         "speedup": best["torch"] / best["swa"], "loss_rel_diff": rel})
        memory_lengths = [256, 1024] if args.quick else [1024, 16384]
        memory = {side: {seq: child_rss(args, side, seq) for seq in memory_lengths} for side in ("swa", "torch")}

    targets = {lengths[0]: 1.5, lengths[1]: 5.0}
    result = {"threads": args.threads, "torch_version": torch.__version__, "preset": "mixed_gated",
              "rows": rows, "memory": {s: {str(k): v for k, v in m.items()} for s, m in memory.items()},
              "targets": []}
    print(f"\nswa against its PyTorch twin (SDPA with a band mask), {args.threads} threads, torch {torch.__version__}")
    print("| seq | swa tokens/s | torch tokens/s | speedup | target |")
    print("|---|---|---|---|---|")
    for r in rows:
        bound = targets[r["seq"]]
        met = r["speedup"] >= bound
        result["targets"].append({"target": f"training tokens/s against the twin at seq {r['seq']}",
                                  "value": r["speedup"], "bound": bound, "met": met})
        print(f"| {r['seq']} | {r['swa_tokens_per_second']:.0f} | {r['torch_tokens_per_second']:.0f} | "
              f"{r['speedup']:.2f}x | >= {bound}x {'met' if met else 'NOT met'} |")
    lo, hi = memory_lengths
    for side in ("swa", "torch"):
        a, b = memory[side][lo], memory[side][hi]
        if "error" in a or "error" in b:
            print(f"{side}: peak RSS {a} at {lo}, {b} at {hi}")
            continue
        growth = b["peak_rss_mib"] / a["peak_rss_mib"]
        result[f"{side}_memory_growth"] = growth
        print(f"{side}: peak RSS {a['peak_rss_mib']:.0f} MiB at seq {lo}, {b['peak_rss_mib']:.0f} MiB at {hi}: "
              f"{growth:.2f}x")
    if "swa_memory_growth" in result:
        met = result["swa_memory_growth"] <= 17
        result["targets"].append({"target": f"peak memory growth from seq {lo} to {hi}",
                                  "value": result["swa_memory_growth"], "bound": 17, "met": met})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
