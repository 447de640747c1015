#!/usr/bin/env python3
"""Training throughput and memory of swa's model against its PyTorch twin.

The twin (tests/python/swa_twin.py) is the same model written from docs/MODEL.md in
PyTorch, with attention as torch.nn.functional.scaled_dot_product_attention under a
boolean band mask: what a PyTorch user writes (PyTorch's CPU FlexAttention has no
backward). Both run the preset mixed_gated at its default size (~9.5M parameters: narrow,
wide and global heads, gated fusion) from one checkpoint, in f32, on the same number of
threads, on one document of `seq` tokens per step.

  * Each measurement runs in a fresh child process (so that the twin running out of memory
    at long lengths is a result, not a crash of the benchmark): one warm-up step, then
    the best of the timed steps (forward and backward: the loss and every parameter's
    gradient; the optimizer update is left out on both sides), and the child's peak RSS.
    swa runs through libswa.so's C API (its child does not import torch), the twin
    through autograd. The two sides alternate, twice, and each keeps its best, so that a
    slow spell of this shared machine touches both. Both report their loss, which must
    agree (both ran the same model).

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
    loss = model.step(tokens, targets)  # warm-up
    best = float("inf")
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = model.step(tokens, targets)
        best = min(best, time.perf_counter() - t0)
    print(json.dumps({"seconds": best, "loss": loss, "peak_rss_mib": peak_rss_mib()}))


def measure(args, side, seq, steps):
    """One child run: {"seconds", "loss", "peak_rss_mib"}, or {"error"} when it failed
    (a child killed for memory reports it)."""
    out = subprocess.run([sys.executable, __file__, "--child", side, "--seq", str(seq), "--steps", str(steps),
                          "--build", args.build, "--threads", str(args.threads), "--checkpoint", args.checkpoint],
                         capture_output=True, text=True)
    if out.returncode != 0:
        reason = "killed (out of memory)" if out.returncode == -9 else (out.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {side} at seq {seq}: {reason}", flush=True)
        return {"error": reason}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {side} at seq {seq}: {result['seconds']:.2f} s per step, peak RSS {result['peak_rss_mib']:.0f} MiB",
          flush=True)
    return result


def run_all(args, lengths):
    results = {}
    for seq in lengths:
        steps = 2 if seq <= 4096 else 1
        runs = {"swa": [], "torch": []}
        for _ in range(2):
            for side in ("swa", "torch"):
                if runs[side] and "error" in runs[side][-1]:
                    continue  # out of memory once is enough
                runs[side].append(measure(args, side, seq, steps))
        row = {"seq": seq}
        for side, r in runs.items():
            ok = [x for x in r if "error" not in x]
            row[side] = min(ok, key=lambda x: x["seconds"]) if ok else r[-1]
        if "error" not in row["swa"] and "error" not in row["torch"]:
            rel = abs(row["swa"]["loss"] - row["torch"]["loss"]) / abs(row["torch"]["loss"])
            if rel > 1e-4:
                raise SystemExit(f"the losses differ at seq {seq}: {row['swa']['loss']} vs {row['torch']['loss']}")
            row["speedup"] = row["torch"]["seconds"] / row["swa"]["seconds"]
        results[seq] = row
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--quick", action="store_true", help="short sequences (a smoke test)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--child", choices=["swa", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--seq", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--checkpoint", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    import torch
    lengths = [256, 512, 1024] if args.quick else [1024, 2048, 8192, 16384]
    speed_targets = {512: 1.5, 1024: 5.0} if args.quick else {2048: 1.5, 16384: 5.0}
    lo, hi = (256, 1024) if args.quick else (1024, 16384)
    with tempfile.TemporaryDirectory() as tmp:
        args.checkpoint = os.path.join(tmp, "model.safetensors")
        make_checkpoint(os.path.join(args.build, "swa"), args.checkpoint)
        results = run_all(args, lengths)

    result = {"threads": args.threads, "torch_version": torch.__version__, "preset": "mixed_gated",
              "rows": list(results.values()), "targets": []}
    print(f"\nswa against its PyTorch twin (SDPA with band masks), {args.threads} threads, torch {torch.__version__}")
    print("| seq | swa tokens/s | torch tokens/s | swa / torch | swa peak RSS | torch peak RSS |")
    print("|---|---|---|---|---|---|")
    for r in results.values():
        tps = {s: f"{r['seq'] / r[s]['seconds']:.0f}" if "error" not in r[s] else r[s]["error"] for s in ("swa", "torch")}
        rss = {s: f"{r[s]['peak_rss_mib']:.0f} MiB" if "error" not in r[s] else "-" for s in ("swa", "torch")}
        speed = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
        print(f"| {r['seq']} | {tps['swa']} | {tps['torch']} | {speed} | {rss['swa']} | {rss['torch']} |")
    for seq, bound in speed_targets.items():
        r = results[seq]
        if "speedup" in r:
            result["targets"].append({"target": f"training tokens/s against the twin at seq {seq}",
                                      "value": r["speedup"], "bound": bound, "met": r["speedup"] >= bound})
        else:
            result["targets"].append({"target": f"training tokens/s against the twin at seq {seq} "
                                                f"(twin: {r['torch'].get('error', '?')})",
                                      "value": None, "bound": bound, "met": None})
    for side in ("swa", "torch"):
        a, b = results[lo][side], results[hi][side]
        if "error" in a or "error" in b:
            print(f"{side}: peak RSS growth from seq {lo} to {hi}: not measured ({b.get('error', a.get('error'))})")
            continue
        growth = b["peak_rss_mib"] / a["peak_rss_mib"]
        result[f"{side}_memory_growth"] = growth
        print(f"{side}: peak RSS {a['peak_rss_mib']:.0f} MiB at seq {lo}, {b['peak_rss_mib']:.0f} MiB at {hi}: "
              f"{growth:.2f}x")
    if "swa_memory_growth" in result:
        result["targets"].append({"target": f"peak memory growth of a step from seq {lo} to {hi}",
                                  "value": result["swa_memory_growth"], "bound": 17,
                                  "met": result["swa_memory_growth"] <= 17})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
