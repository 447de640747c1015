#!/usr/bin/env python3
"""The main job's experiment: three twins trained on the same text with the same steps and
seed, differing only in their attention windows (full attention, one sliding window per
head, and mixed narrow/wide/global heads with gated fusion), then compared on one table:
validation bits per byte at the training length and at 8x it, long-range recall, step
time, peak memory and decode speed at a 64k context; then a sample streamed from the best
sliding-window twin. Writes OUT/results.json, OUT/loss_curves.png and
OUT/bpb_vs_length.png.

The default text is the Python standard library's sources of the interpreter running this
script (found with sysconfig, so on every Debian machine); --data overrides it.

Usage: compare_windows.py --swa BUILD/swa [--data PATH ...] [--out results] [--steps N] ...
Only the standard library is needed, and matplotlib for the plots (skipped without it).
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import sysconfig
import time

PRESETS = ["full", "uniform", "mixed_gated"]
LABELS = {"full": "full attention", "uniform": "sliding window", "mixed_gated": "mixed + gated fusion"}
START = time.monotonic()


def say(message):
    print(f"[{time.monotonic() - START:6.0f} s] {message}", flush=True)


def run(cmd, capture=False):
    """Runs cmd; its progress goes to this terminal. Returns stdout when capturing."""
    say("$ " + " ".join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE if capture else None, text=capture)
    if p.returncode != 0:
        sys.exit(f"compare_windows: failed (exit {p.returncode}): {' '.join(cmd)}")
    return p.stdout


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def stream_sample(cmd, prompt):
    """Runs swa generate, echoing the prompt and then its bytes as they arrive; returns the text."""
    say("$ " + " ".join(repr(c) if "\n" in c else c for c in cmd))
    print("-" * 72 + "\n" + prompt, end="", flush=True)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = bytearray()
    while True:
        chunk = p.stdout.read1(256)
        if not chunk:
            break
        out += chunk
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
    if p.wait() != 0:
        sys.exit(f"compare_windows: swa generate failed (exit {p.returncode})")
    print(flush=True)
    return out.decode("utf-8", "replace")


def plot(results, out_dir):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("matplotlib is missing: no plots (scripts/install-deps.sh installs python3-matplotlib)")
        return []
    def save(fig, ax, xlabel, ylabel, title, name):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for preset, r in results["runs"].items():
        steps = [p["step"] for p in r["curve"]["train"]]
        losses = [p["loss"] / math.log(2) for p in r["curve"]["train"]]
        k = max(1, len(losses) // 40)  # moving average over ~1/40 of the run
        smooth = [statistics.fmean(losses[max(0, i - k + 1): i + 1]) for i in range(len(losses))]
        line = ax.plot(steps, smooth, label=f"{LABELS[preset]} (train)")[0]
        val = r["curve"]["validation"]
        ax.plot([p["step"] for p in val], [p["bits_per_byte"] for p in val], "o--", color=line.get_color(),
                label=f"{LABELS[preset]} (validation)")
    curves = save(fig, ax, "step", "bits per byte", f"Training, {results['settings']['seq']} tokens per row",
                  "loss_curves.png")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for preset, r in results["runs"].items():
        points = r["eval"]["contexts"]
        ax.plot([p["context"] for p in points], [p["bits_per_byte"] for p in points], "o-", label=LABELS[preset])
    ax.axvline(results["settings"]["seq"], color="gray", ls=":", label="training length")
    ax.set_xscale("log", base=2)
    lengths = save(fig, ax, "evaluation length (tokens)", "validation bits per byte", "Past the training length",
                   "bpb_vs_length.png")
    return [curves, lengths]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--swa", required=True, help="the swa binary")
    ap.add_argument("--data", nargs="+", help="text files or directories (default: Python's standard library)")
    ap.add_argument("--ext", nargs="*", help="only these extensions (default: py with the default data, else all)")
    ap.add_argument("--out", default="results", help="output directory (default: results)")
    ap.add_argument("--runs", help="where the twins' run directories go (default: OUT/runs)")
    ap.add_argument("--size", default="small", choices=["tiny", "small", "default"], help="preset size")
    ap.add_argument("--steps", type=int, default=160)
    ap.add_argument("--seq", type=int, default=512, help="training length (tokens per row)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-bytes", type=int, default=40960, help="validation bytes scored at each length")
    ap.add_argument("--recall-trials", type=int, default=24)
    ap.add_argument("--decode-context", type=int, default=65536)
    ap.add_argument("--sample-tokens", type=int, default=300)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    swa = os.path.abspath(args.swa)
    if args.data:
        data, ext = args.data, args.ext or []
        source = "--data " + " ".join(args.data)
    else:
        stdlib = sysconfig.get_paths()["stdlib"]
        data, ext = [stdlib], args.ext if args.ext is not None else ["py"]
        source = f"the Python {platform.python_version()} standard library at {stdlib}"
    ext_args = ["--ext", *ext] if ext else []
    out_dir = os.path.abspath(args.out)
    runs_dir = os.path.abspath(args.runs) if args.runs else os.path.join(out_dir, "runs")
    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(runs_dir, exist_ok=True)
    threads = ["--threads", str(args.threads)]
    seq = args.seq
    contexts = [seq // 4, seq, 2 * seq, 8 * seq]
    size_config = json.loads(run([swa, "preset", "uniform", "--size", args.size], capture=True))
    window = size_config["layers"][0]["windows"][0][0] + 1
    # Recall: the repeat 16 + distance bytes after the original; inside the local window,
    # and past the reach of every stacked local layer.
    distances = [max(0, window // 2 - 16), window * (size_config["num_hidden_layers"] + 1)]
    say(f"data: {source}" + (f" (files *.{', *.'.join(ext)})" if ext else ""))
    say(f"three twins, preset size {args.size}, {args.steps} steps of {args.batch} x {seq} tokens, seed {args.seed}")

    results = {
        "settings": {"size": args.size, "steps": args.steps, "seq": seq, "batch": args.batch, "lr": args.lr,
                     "seed": args.seed, "data": source, "ext": ext, "eval_bytes": args.eval_bytes,
                     "contexts": contexts, "recall_distances": distances, "decode_context": args.decode_context},
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "runs": {},
    }
    for i, preset in enumerate(PRESETS):
        run_dir = os.path.join(runs_dir, preset)
        say(f"[{i + 1}/{len(PRESETS)}] training {preset} ({LABELS[preset]})")
        train_cmd = [swa, "train", "--preset", preset, "--size", args.size, "--data", *data, *ext_args,
                     "--out", run_dir, "--steps", str(args.steps), "--seq", str(seq), "--batch", str(args.batch),
                     "--lr", str(args.lr), "--seed", str(args.seed), "--eval-every", str(max(1, args.steps // 6)),
                     "--eval-batches", "4", *threads]
        if os.path.exists(os.path.join(run_dir, "model.safetensors")):
            train_cmd.append("--resume")  # a finished run resumes to nothing; an interrupted one continues
        run(train_cmd)
        log = read_jsonl(os.path.join(run_dir, "train.jsonl"))
        train = [e for e in log if "loss" in e and "grad_norm" in e]
        val = [{"step": e["step"], "bits_per_byte": e["val_bits_per_byte"]} for e in log if "val_bits_per_byte" in e]
        ckpt = os.path.join(run_dir, "model.safetensors")
        say(f"[{i + 1}/{len(PRESETS)}] evaluating {preset} at lengths {contexts}")
        eval_cmd = [swa, "eval", "--ckpt", ckpt, "--data", *data, *ext_args, "--split", "val",
                    "--contexts", ",".join(map(str, contexts)), "--max-bytes", str(args.eval_bytes),
                    "--recall-trials", str(args.recall_trials),
                    "--recall-distances", ",".join(map(str, distances)), "--json", *threads]
        # A rerun (e.g. after an interruption) reuses an evaluation of the same checkpoint
        # with the same command.
        eval_json = os.path.join(run_dir, "eval.json")
        saved = {}
        if os.path.exists(eval_json):
            with open(eval_json) as f:
                saved = json.load(f)
        if saved.get("command") == eval_cmd[1:] and saved.get("ckpt_mtime") == os.path.getmtime(ckpt):
            ev = saved["result"]
            say(f"reusing {eval_json}")
        else:
            ev = json.loads(run(eval_cmd, capture=True))
            with open(eval_json, "w") as f:
                json.dump({"command": eval_cmd[1:], "ckpt_mtime": os.path.getmtime(ckpt), "result": ev}, f)
        bench_json = os.path.join(run_dir, "decode.json")
        run([swa, "bench", "generate", "--ckpt", ckpt, "--decode-contexts", str(args.decode_context),
             "--prefill-lengths", "0", "--json", bench_json, *threads], capture=True)
        with open(bench_json) as f:
            bench = json.load(f)["generate"]
        results["runs"][preset] = {
            "checkpoint": ckpt,
            "parameters": bench["parameters"],
            "step_seconds_median": statistics.median(e["seconds"] for e in train),
            "peak_rss_bytes": max(e["peak_rss_bytes"] for e in train),
            "tokens_per_second_median": statistics.median(e["tokens_per_s"] for e in train),
            "eval": ev,
            "decode": bench["decode"][0],
            "curve": {"train": [{"step": e["step"], "loss": e["loss"]} for e in train], "validation": val},
        }

    # The table.
    t, e8 = str(seq), str(8 * seq)
    rows = []
    head = ["twin", f"val bpb @{seq}", f"val bpb @{8 * seq}", "8x / 1x",
            f"recall @{distances[0]}", f"recall @{distances[1]}", "step (ms)", "peak RSS (MiB)",
            f"decode tok/s @{args.decode_context // 1024}k", "K/V (MiB)"]
    for preset, r in results["runs"].items():
        bpb = r["eval"]["bits_per_byte"]
        rec = {x["distance"]: x["accuracy"] for x in r["eval"]["recall"]}
        rows.append([LABELS[preset], f"{bpb[t]:.4f}", f"{bpb[e8]:.4f}", f"{bpb[e8] / bpb[t]:.4f}",
                     f"{rec[distances[0]]:.2f}", f"{rec[distances[1]]:.2f}", f"{1000 * r['step_seconds_median']:.0f}",
                     f"{r['peak_rss_bytes'] / 2**20:.0f}", f"{r['decode']['tokens_per_second']:.0f}",
                     f"{r['decode']['kv_cache_bytes'] / 2**20:.1f}"])
    widths = [max(len(h), *(len(row[j]) for row in rows)) for j, h in enumerate(head)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]

    # The quality targets, for each sliding-window twin against full attention.
    full = results["runs"]["full"]["eval"]["bits_per_byte"][t]
    targets = []
    for preset in ("uniform", "mixed_gated"):
        bpb = results["runs"][preset]["eval"]["bits_per_byte"]
        gap = bpb[t] / full - 1
        rise = bpb[e8] / bpb[t] - 1
        targets.append({"target": f"{preset}: bits per byte at {seq} over full attention's - 1", "value": gap,
                        "bound": 0.03, "met": gap <= 0.03})
        targets.append({"target": f"{preset}: bits per byte at {8 * seq} over its own at {seq} - 1", "value": rise,
                        "bound": 0.02, "met": rise <= 0.02})
    results["targets"] = targets
    results["table"] = lines

    best = min(("uniform", "mixed_gated"), key=lambda p: results["runs"][p]["eval"]["bits_per_byte"][t])
    say(f"a sample from the best sliding-window twin ({best}, {LABELS[best]}):")
    prompt = "import os\n\n\nclass "
    sample = stream_sample([swa, "generate", "--ckpt", os.path.join(runs_dir, best, "model.safetensors"),
                            "--prompt", prompt, "--max-tokens", str(args.sample_tokens), "--temperature", "0.7",
                            "--top-k", "40", "--seed", str(args.seed), *threads], prompt)
    print("-" * 72)
    results["sample"] = {"twin": best, "prompt": prompt, "text": sample}
    results["plots"] = [os.path.basename(p) for p in plot(results, out_dir)]
    results["seconds"] = time.monotonic() - START
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)

    print()
    print(f"Same data, steps ({args.steps} x {args.batch} x {seq} tokens) and seed; validation bytes scored: "
          f"{results['runs']['full']['eval']['bytes']}")
    print("\n".join(lines))
    for x in targets:
        print(f"  {x['target']}: {x['value']:+.4f} (bound {x['bound']:+.2f}) {'met' if x['met'] else 'NOT met'}")
    say(f"wrote {os.path.join(out_dir, 'results.json')} and {', '.join(results['plots']) or 'no plots'}")


if __name__ == "__main__":
    main()
