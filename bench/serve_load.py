#!/usr/bin/env python3
"""Load test of `swa serve` (issue 14): concurrent streaming clients on loopback.

Three phases against one server started with --max-streams STREAMS on a free port:
  A: one client streaming completions back to back for T seconds;
  B: STREAMS clients at once for T seconds. Aggregate decode tokens/s = tokens generated
     (the answers' usage.completion_tokens) / wall time; target B >= 4x A. Time to first
     token and inter-token latency are taken client-side from SSE chunk arrival times,
     and from the server's histograms (/metrics deltas over the phase);
  M: STREAMS clients for --duration seconds, each request's prompt plus max_tokens taking
     its position past 10x the model's widest window; the server's VmRSS and the /metrics
     memory gauges are sampled every second. Target: over the second half, RSS within 2%
     of the first sample after warm-up.

With --make-ckpt the checkpoint is trained for one step: the test measures speed and
memory, not text quality. The server is always killed at the end.

usage: bench/serve_load.py --swa build/swa (--ckpt FILE | --make-ckpt) [--quick] [--json PATH]
"""
import argparse
import http.client
import json
import os
import re
import signal
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

SPEEDUP_BOUND = 4.0
MEMORY_BOUND = 0.02
WINDOW_MULTIPLE = 10


def log(msg):
    print(f"[serve_load {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_checkpoint(swa, size, out_dir):
    stdlib = sysconfig.get_paths()["stdlib"]
    log(f"training a 1-step uniform/{size} checkpoint on {stdlib} (*.py)")
    subprocess.run([swa, "train", "--preset", "uniform", "--size", size, "--steps", "1", "--data", stdlib,
                    "--ext", "py", "--out", out_dir], check=True, stdout=subprocess.DEVNULL)
    return os.path.join(out_dir, "model.safetensors")


def widest_window(ckpt):
    """The widest attention span (left + right + 1) of the checkpoint's config; None if a head is global."""
    with open(ckpt, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    config = json.loads(header["__metadata__"]["config"])
    spans = [left + right + 1 if left >= 0 and right >= 0 else None
             for layer in config["layers"] for left, right in layer["windows"]]
    return None if None in spans else max(spans)


class Server:
    def __init__(self, swa, ckpt, streams, threads):
        self.proc = subprocess.Popen([swa, "serve", "--ckpt", ckpt, "--port", "0", "--max-streams", str(streams),
                                      "--max-queue", str(4 * streams), "--threads", str(threads)],
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        m = re.search(r"listening on http://([\d.]+):(\d+)", line)
        if not m:
            self.kill()
            raise RuntimeError(f"swa serve did not start: {line!r}")
        self.host, self.port = m.group(1), int(m.group(2))
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def metrics(self):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def stream_once(server, body):
    """One streamed completion: {start, chunk times, completion tokens, prompt tokens}."""
    start = time.perf_counter()
    conn = http.client.HTTPConnection(server.host, server.port, timeout=600)
    conn.request("POST", "/v1/completions", body=json.dumps(dict(body, stream=True)),
                 headers={"Content-Type": "application/json"})
    res = conn.getresponse()
    if res.status != 200:
        raise RuntimeError(f"/v1/completions answered {res.status}: {res.read()[:200]!r}")
    times, usage = [], None
    while True:
        line = res.readline()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[len(b"data: "):]
        if data == b"[DONE]":
            break
        chunk = json.loads(data)
        if chunk["choices"][0]["text"]:
            times.append(time.perf_counter())
        usage = chunk.get("usage") or usage
    conn.close()
    return {"start": start, "times": times, "tokens": usage["completion_tokens"] if usage else 0,
            "prompt_tokens": usage["prompt_tokens"] if usage else 0}


class Phase:
    """Clients each streaming completions back to back until the deadline (a started one runs to its end)."""

    def __init__(self, server, clients, seconds, body_of):
        self.records, self.errors, self.lock = [], [], threading.Lock()
        self.t0 = time.perf_counter()
        deadline = self.t0 + seconds

        def client(i):
            k = 0
            while time.perf_counter() < deadline:
                try:
                    r = stream_once(server, body_of(i, k))
                except Exception as e:  # noqa: BLE001 -- reported, the phase carries on
                    with self.lock:
                        self.errors.append(str(e))
                    time.sleep(0.2)
                    continue
                with self.lock:
                    self.records.append(r)
                k += 1

        self.threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
        for t in self.threads:
            t.start()

    def tokens(self):
        with self.lock:
            return sum(r["tokens"] for r in self.records)

    def join(self):
        for t in self.threads:
            t.join()
        self.wall = time.perf_counter() - self.t0


def percentile(values, q):
    if not values:
        return None
    v = sorted(values)
    x = q * (len(v) - 1)
    i = int(x)
    return v[i] if i + 1 >= len(v) else v[i] + (v[i + 1] - v[i]) * (x - i)


def histogram_quantile(before, after, name, q):
    """Quantile of a Prometheus histogram's counts added between two scrapes (linear within a bucket)."""
    buckets = sorted((float(dict(k[1])["le"]), after[k] - before.get(k, 0.0))
                     for k in after if k[0] == name + "_bucket")
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return lower


def latency(records, before, after):
    ttft = [r["times"][0] - r["start"] for r in records if r["times"]]
    itl = [b - a for r in records for a, b in zip(r["times"], r["times"][1:])]
    out = {"requests": len(records), "client": {}, "server": {}}
    for key, values, metric in (("ttft", ttft, "swa_time_to_first_token_seconds"),
                                ("itl", itl, "swa_inter_token_latency_seconds")):
        for q in (0.5, 0.99):
            out["client"][f"{key}_p{int(q * 100)}_s"] = percentile(values, q)
            out["server"][f"{key}_p{int(q * 100)}_s"] = histogram_quantile(before, after, metric, q)
    return out


def run_phase(server, name, clients, seconds, body_of, progress):
    before = server.metrics()
    progress.phase = name
    phase = Phase(server, clients, seconds, body_of)
    progress.current = phase
    phase.join()
    after = server.metrics()
    generated = after[("swa_generated_tokens_total", ())] - before[("swa_generated_tokens_total", ())]
    tokens = sum(r["tokens"] for r in phase.records)
    result = {"clients": clients, "seconds": phase.wall, "tokens": tokens, "tokens_per_second": tokens / phase.wall,
              "server_generated_tokens": generated, "errors": len(phase.errors)}
    result.update(latency(phase.records, before, after))
    log(f"phase {name}: {clients} clients, {tokens} tokens in {phase.wall:.1f} s = "
        f"{result['tokens_per_second']:.0f} tokens/s, {len(phase.errors)} errors")
    return result


class Progress:
    """Prints elapsed/ETA every few seconds."""

    def __init__(self, planned):
        self.start, self.planned, self.phase, self.current = time.time(), planned, "start", None
        self.done = threading.Event()
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while not self.done.wait(5):
            elapsed = time.time() - self.start
            tokens = self.current.tokens() if self.current else 0
            log(f"{self.phase}: elapsed {elapsed:.0f} s, ETA {max(self.planned - elapsed, 0):.0f} s, "
                f"{tokens} tokens in this phase")


def memory_phase(server, clients, duration, window, progress):
    prompt_len = 4 * window
    max_tokens = (WINDOW_MULTIPLE - 4) * window + 64  # prompt + tokens pass 10x the window
    filler = "def f(x):\n    return x + 1\n" * (prompt_len // 29 + 1)
    body_of = lambda i, k: {"prompt": filler[:prompt_len], "max_tokens": max_tokens, "temperature": 0}
    before = server.metrics()
    progress.phase = "memory"
    phase = Phase(server, clients, duration, body_of)
    progress.current = phase
    samples, t0 = [], time.perf_counter()
    while time.perf_counter() - t0 < duration:
        m = server.metrics()
        samples.append({"t": time.perf_counter() - t0, "rss_bytes": server.rss(),
                        "resident_bytes": m.get(("process_resident_memory_bytes", ())),
                        "kv_cache_bytes": m.get(("swa_kv_cache_bytes_total", ())),
                        "active_streams": m.get(("swa_active_streams", ()))})
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - t0 - samples[-1]["t"])))
    phase.join()
    after = server.metrics()
    warm = max(2.0, 0.1 * duration)
    base = next(s for s in samples if s["t"] >= warm)
    half = [s for s in samples if s["t"] >= duration / 2]
    out = {"clients": clients, "seconds": phase.wall, "window": window, "prompt_bytes": prompt_len,
           "max_tokens": max_tokens, "requests": len(phase.records), "errors": len(phase.errors),
           "warmup_seconds": warm, "samples": samples, "tokens": sum(r["tokens"] for r in phase.records),
           "max_position": max((r["prompt_tokens"] + r["tokens"] for r in phase.records), default=0)}
    out["max_position_over_window"] = out["max_position"] / window
    out["tokens_per_second"] = out["tokens"] / phase.wall
    for key in ("rss_bytes", "resident_bytes", "kv_cache_bytes"):
        vals = [s[key] for s in half if s[key] is not None]
        out[key] = {"baseline": base[key], "min": min(vals, default=None), "max": max(vals, default=None)}
        if base[key] and vals:
            out[key]["max_over_baseline"] = max(vals) / base[key]
            out[key]["min_over_baseline"] = min(vals) / base[key]
    out["latency"] = latency(phase.records, before, after)
    log(f"memory: {len(phase.records)} requests, positions up to {out['max_position']} "
        f"({out['max_position_over_window']:.1f}x window {window})")
    return out


def fmt(x, scale=1.0, spec=".1f"):
    return "-" if x is None else format(x * scale, spec)


def report(res):
    a, b, m = res["single"], res["concurrent"], res["memory"]
    print(f"\nswa serve load test ({res['checkpoint']}; {res['note']})")
    print(f"{'phase':<12}{'clients':>8}{'tokens':>9}{'tokens/s':>10}"
          f"{'ttft p50':>12}{'ttft p99':>12}{'itl p50':>12}{'itl p99':>12}   (ms; client / server histogram)")
    for name, p in (("single", a), ("concurrent", b), ("memory", m["latency"] | {k: m[k] for k in ("clients", "tokens", "tokens_per_second")})):
        c, s = p["client"], p["server"]
        print(f"{name:<12}{p['clients']:>8}{p.get('tokens', '-'):>9}{fmt(p.get('tokens_per_second'), 1, '.0f'):>10}"
              + "".join(f"{fmt(c[k], 1e3) + '/' + fmt(s[k], 1e3):>12}"
                        for k in ("ttft_p50_s", "ttft_p99_s", "itl_p50_s", "itl_p99_s")))
    print(f"memory: RSS baseline {fmt(m['rss_bytes']['baseline'], 2**-20)} MiB, second half "
          f"{fmt(m['rss_bytes']['min'], 2**-20)}..{fmt(m['rss_bytes']['max'], 2**-20)} MiB; KV cache "
          f"{fmt(m['kv_cache_bytes']['min'], 2**-20, '.2f')}..{fmt(m['kv_cache_bytes']['max'], 2**-20, '.2f')} MiB; "
          f"positions up to {m['max_position']} = {m['max_position_over_window']:.1f}x window {m['window']}")
    print(f"\n{'target':<62}{'value':>8}{'bound':>8}  met")
    for t in res["targets"]:
        print(f"{t['target']:<62}{fmt(t['value'], 1, '.3f'):>8}{t['bound']:>8.2f}  "
              f"{'-' if t['met'] is None else ('yes' if t['met'] else 'NO')}")


def targets(res):
    a, b, m = res["single"], res["concurrent"], res["memory"]
    speedup = b["tokens_per_second"] / a["tokens_per_second"] if a["tokens_per_second"] else None
    rss = m["rss_bytes"]
    drift = (max(rss["max_over_baseline"] - 1, 1 - rss["min_over_baseline"])
             if "max_over_baseline" in rss else None)
    reached = m["max_position_over_window"] >= WINDOW_MULTIPLE
    return [
        {"target": f"decode tokens/s, {b['clients']} streams over 1", "value": speedup, "bound": SPEEDUP_BOUND,
         "met": None if speedup is None else speedup >= SPEEDUP_BOUND},
        {"target": f"RSS drift over the second half of {m['seconds']:.0f} s (share)", "value": drift,
         "bound": MEMORY_BOUND, "met": None if drift is None or not reached else drift <= MEMORY_BOUND},
        {"target": "positions reached over the widest window", "value": m["max_position_over_window"],
         "bound": float(WINDOW_MULTIPLE), "met": reached},
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--swa", default="build/swa")
    ap.add_argument("--ckpt", help="checkpoint to serve")
    ap.add_argument("--make-ckpt", action="store_true", help="train a 1-step uniform checkpoint first")
    ap.add_argument("--size", choices=["tiny", "small", "default"],
                    help="--make-ckpt's preset size (default: small, tiny with --quick)")
    ap.add_argument("--note", help="what the checkpoint is, for the JSON and BENCHMARKS.md")
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30, help="T: length of phases A and B")
    ap.add_argument("--duration", type=float, default=180, help="length of the memory phase")
    ap.add_argument("--max-tokens", type=int, default=128, help="max_tokens of the throughput phases")
    ap.add_argument("--threads", type=int, default=1, help="the server's --threads")
    ap.add_argument("--quick", action="store_true", help="4 streams, T=5 s, duration 20 s, tiny preset")
    ap.add_argument("--json", help="write every figure here")
    args = ap.parse_args()
    if args.quick:
        args.streams, args.seconds, args.duration = 4, 5.0, 20.0
    if not args.ckpt and not args.make_ckpt:
        ap.error("give --ckpt FILE or --make-ckpt")
    tmp = tempfile.TemporaryDirectory(prefix="serve_load_")
    size = args.size or ("tiny" if args.quick else "small")
    ckpt = args.ckpt or make_checkpoint(args.swa, size, tmp.name)
    window = widest_window(ckpt)
    if window is None:
        log("the checkpoint has a global head: its cache grows with every position, memory cannot stay flat")
        window = 256
    planned = 2 * args.seconds + args.duration + 10
    log(f"serving {ckpt} (widest window {window}), {args.streams} streams; about {planned:.0f} s")
    # SIGTERM unwinds through the finally below, which kills the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    server = Server(args.swa, ckpt, args.streams, args.threads)
    progress = Progress(planned)
    try:
        prompt = "import os\n\ndef main(argv):\n"
        body_of = lambda i, k: {"prompt": prompt, "max_tokens": args.max_tokens, "temperature": 1.0, "top_k": 40,
                                "seed": 1000 * i + k}
        res = {"checkpoint": ckpt, "window": window, "threads": args.threads,
               "measured": time.strftime("%Y-%m-%d"),
               "note": args.note or (f"1-step uniform/{size} checkpoint: speed and memory only, not text quality"
                                     if args.make_ckpt else "given checkpoint"),
               "single": run_phase(server, "single", 1, args.seconds, body_of, progress),
               "concurrent": run_phase(server, "concurrent", args.streams, args.seconds, body_of, progress)}
        res["memory"] = memory_phase(server, args.streams, args.duration, window, progress)
        res["targets"] = targets(res)
    finally:
        progress.done.set()
        server.kill()
        tmp.cleanup()
    report(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
