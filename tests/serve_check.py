#!/usr/bin/env python3
"""`swa serve` as a process, on the bigram checkpoint of generate_test_model, whose greedy
text is known: plain and streamed completions (Server-Sent Events framing), the metrics
parsed by prometheus_client's text parser and checked against the answers, every kind of
bad input (400, then the server still answers), a full queue (429), clients that
disconnect mid-stream (their streams are freed), determinism (each seeded request gives
the text `swa generate` gives, whether served alone or among 15 others), and SIGTERM
during a stream (the stream ends with its last event and [DONE], the process exits 0).

Usage: serve_check.py SWA_BINARY GENERATE_TEST_MODEL   (needs prometheus_client)
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

BOS = 256
CHAINS = [
    [ord(c) for c in "kABCDE"],  # k -> ABCDE, then EOS
    [ord("r"), ord("R"), ord("r")],  # a loop: never ends by itself
]

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


class Server:
    def __init__(self, swa, model, *extra):
        self.proc = subprocess.Popen([swa, "serve", "--ckpt", model, "--port", "0", "--threads", "1", *extra],
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        m = re.search(r"listening on http://([\d.]+):(\d+)", line)
        if not m:
            self.proc.kill()
            raise RuntimeError(f"swa serve did not start: {line!r} {self.proc.stderr.read()!r}")
        self.host, self.port = m.group(1), int(m.group(2))
        # Keep reading stderr so that the process never blocks on a full pipe.
        self.log = []
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()

    def request(self, method, path, body=None, raw=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        res = conn.getresponse()
        payload = res.read()
        conn.close()
        return res.status, res.getheader("Content-Type", ""), payload

    def complete(self, body):
        status, _, payload = self.request("POST", "/v1/completions", body)
        return status, json.loads(payload)

    def open_stream(self, body):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        conn.request("POST", "/v1/completions", body=json.dumps(dict(body, stream=True)),
                     headers={"Content-Type": "application/json"})
        return conn, conn.getresponse()

    def metrics(self):
        status, ctype, payload = self.request("GET", "/metrics")
        check(status == 200 and ctype.startswith("text/plain"), f"/metrics: {status} {ctype}")
        samples = {}
        for family in text_string_to_metric_families(payload.decode()):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def read_events(res):
    """The SSE events of a streamed answer: (list of data strings, framing ok)."""
    body = res.read().decode("utf-8")
    ok = body.endswith("\n\n")
    events = body.split("\n\n")[:-1]
    ok = ok and all(e.startswith("data: ") and "\n" not in e for e in events)
    return [e[len("data: "):] for e in events], ok


def streamed(server, body):
    conn, res = server.open_stream(body)
    check(res.status == 200, f"stream {body}: status {res.status}")
    check(res.getheader("Content-Type", "").startswith("text/event-stream"), "stream: not text/event-stream")
    data, framing = read_events(res)
    conn.close()
    check(framing, f"stream {body}: bad SSE framing {data!r}")
    check(data and data[-1] == "[DONE]", f"stream {body}: does not end with [DONE]: {data[-2:]!r}")
    chunks = [json.loads(d) for d in data[:-1]]
    text = "".join(c["choices"][0]["text"] for c in chunks)
    finish = [c["choices"][0]["finish_reason"] for c in chunks]
    check(all(f is None for f in finish[:-1]) and finish[-1] is not None, f"stream {body}: finish {finish}")
    check(all(c["object"] == "text_completion" for c in chunks), "stream: object is not text_completion")
    return text, finish[-1], chunks[-1].get("usage")


def plain_and_streamed(server):
    cases = [
        ({"prompt": "k", "temperature": 0, "max_tokens": 10}, "ABCDE", "stop", 2, 6),
        ({"prompt": "k", "temperature": 0, "max_tokens": 10, "stop": "CD"}, "AB", "stop", 2, 4),
        ({"prompt": "k", "temperature": 0, "max_tokens": 10, "stop": ["E", "zz"]}, "ABCD", "stop", 2, 5),
        ({"prompt": "k", "temperature": 0, "max_tokens": 3}, "ABC", "length", 2, 3),
        ({"prompt": "r", "temperature": 0, "max_tokens": 5}, "RrRrR", "length", 2, 5),
        ({"prompt": "r", "max_tokens": 0}, "", "length", 2, 0),
    ]
    prompt_tokens = generated = 0
    for body, text, finish, n_prompt, n_completion in cases:
        status, answer = server.complete(body)
        if check(status == 200, f"{body}: status {status} {answer}"):
            choice = answer["choices"][0]
            check(choice["text"] == text, f"{body}: text {choice['text']!r}, want {text!r}")
            check(choice["finish_reason"] == finish, f"{body}: finish {choice['finish_reason']}, want {finish}")
            usage = answer["usage"]
            check((usage["prompt_tokens"], usage["completion_tokens"]) == (n_prompt, n_completion),
                  f"{body}: usage {usage}")
            check(usage["total_tokens"] == n_prompt + n_completion, f"{body}: total_tokens {usage}")
        got, got_finish, usage = streamed(server, body)
        check((got, got_finish) == (text, finish), f"stream {body}: {got!r} {got_finish}, want {text!r} {finish}")
        check(usage is not None and usage["completion_tokens"] == n_completion, f"stream {body}: usage {usage}")
        prompt_tokens += 2 * n_prompt if n_completion else 0
        generated += 2 * n_completion
    return 2 * len(cases), prompt_tokens, generated


def check_metrics(server, requests, prompt_tokens, generated):
    m = server.metrics()
    ok = (("swa_http_requests_total", (("endpoint", "/v1/completions"), ("status", "200"))))
    check(m.get(ok) == requests, f"requests_total 200: {m.get(ok)}, want {requests}")
    check(m.get(("swa_prefill_tokens_total", ())) == prompt_tokens,
          f"prefill tokens {m.get(('swa_prefill_tokens_total', ()))}, want {prompt_tokens}")
    check(m.get(("swa_generated_tokens_total", ())) == generated,
          f"generated tokens {m.get(('swa_generated_tokens_total', ()))}, want {generated}")
    # A stream's decode steps: one per sampled token but the first.
    with_tokens = m.get(("swa_time_to_first_token_seconds_count", ()))
    check(m.get(("swa_decode_tokens_total", ())) == generated - with_tokens, "decode tokens != generated - streams")
    check(m.get(("swa_inter_token_latency_seconds_count", ())) == generated - with_tokens, "itl count")
    check(m.get(("swa_time_to_first_token_seconds_bucket", (("le", "+Inf"),))) == with_tokens, "ttft +Inf bucket")
    for name in ("swa_active_streams", "swa_queue_depth", "swa_kv_cache_bytes_total"):
        check(m.get((name, ())) == 0, f"{name} = {m.get((name, ()))} when idle")
    check(m.get(("swa_kv_cache_bytes", (("layer", "0"),))) == 0, "swa_kv_cache_bytes{layer=0} missing")
    check(m.get(("process_resident_memory_bytes", ()), 0) > 1 << 20, "process_resident_memory_bytes")


def bad_inputs(server):
    big = "x" * 1001  # the server runs with --max-prompt-bytes 1000
    bodies = [
        ("not json", "JSON"), ("[1, 2]", "object"), ("{}", "prompt"), ('{"prompt": 5}', "prompt"),
        ('{"prompt": "a", "max_tokens": -1}', "max_tokens"), ('{"prompt": "a", "max_tokens": "5"}', "max_tokens"),
        ('{"prompt": "a", "max_tokens": 1.5}', "max_tokens"), ('{"prompt": "a", "temperature": "hot"}', "temperature"),
        ('{"prompt": "a", "temperature": -1}', "temperature"), ('{"prompt": "a", "top_p": 0}', "top_p"),
        ('{"prompt": "a", "top_k": -3}', "top_k"), ('{"prompt": "a", "seed": -1}', "seed"),
        ('{"prompt": "a", "stop": [1]}', "stop"), ('{"prompt": "a", "stop": ""}', "stop"),
        ('{"prompt": "a", "stream": "yes"}', "stream"), ('{"prompt": "a", "n": 2}', "n"),
        (json.dumps({"prompt": big}), "prompt"), ('{"prompt": "a"', "JSON"), ("", "JSON"),
    ]
    for raw, field in bodies:
        status, ctype, payload = server.request("POST", "/v1/completions", raw=raw)
        check(status == 400, f"{raw[:40]!r}: status {status}, want 400")
        try:
            message = json.loads(payload)["error"]["message"]
            check(field in message, f"{raw[:40]!r}: message {message!r} does not name {field!r}")
        except (ValueError, KeyError, TypeError):
            failures.append(f"{raw[:40]!r}: not a JSON error: {payload[:200]!r}")
    status, _, payload = server.request("GET", "/health")
    check(status == 200 and json.loads(payload)["status"] == "ok", f"/health after bad input: {status}")
    return len(bodies)


def seeded(seed):
    return {"prompt": "r", "temperature": 30, "max_tokens": 40, "seed": seed}


def determinism(server, swa, model):
    alone = {}
    for seed in range(16):
        status, answer = server.complete(seeded(seed))
        alone[seed] = answer["choices"][0]["text"] if status == 200 else None
    check(len(set(alone.values())) > 8, "16 seeds gave few distinct texts: sampling is not seeded per request")
    for seed in (0, 7):
        p = subprocess.run([swa, "generate", "--ckpt", model, "--prompt", "r", "--temperature", "30",
                            "--max-tokens", "40", "--seed", str(seed), "--threads", "1"], capture_output=True)
        check(p.stdout.decode("utf-8") == alone[seed], f"seed {seed}: served text differs from swa generate")
    together = {}

    def one(seed):
        body = seeded(seed)
        if seed % 2:
            text, _, _ = streamed(server, body)
            together[seed] = text
        else:
            status, answer = server.complete(body)
            together[seed] = answer["choices"][0]["text"] if status == 200 else f"status {status}"

    threads = [threading.Thread(target=one, args=(s,)) for s in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in range(16):
        check(together.get(seed) == alone[seed],
              f"seed {seed}: among 15 others {together.get(seed)!r}, alone {alone[seed]!r}")


def wait_for(server, condition, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        m = server.metrics()
        if condition(m):
            return m
        time.sleep(0.05)
    return None


def queue_full_and_disconnects(server):
    # 4 streams + 12 queued fill the server; the 17th request is refused.
    long = {"prompt": "r", "temperature": 0, "max_tokens": 60000}
    clients = [server.open_stream(long) for _ in range(16)]
    status, answer = server.complete(long)
    check(status == 429 and "error" in answer, f"a 17th request: status {status}, want 429")
    m = wait_for(server, lambda m: m[("swa_active_streams", ())] == 4 and m[("swa_queue_depth", ())] == 12)
    if check(m is not None, "the gauges never showed 4 active streams and 12 queued"):
        check(m[("swa_kv_cache_bytes_total", ())] > 0, "no KV-cache bytes with 4 active streams")
    # Each client reads a little, then goes away without a word.
    for conn, res in clients:
        res.readline()
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
    m = wait_for(server, lambda m: m[("swa_active_streams", ())] == 0 and m[("swa_queue_depth", ())] == 0)
    if check(m is not None, "streams of disconnected clients were not freed"):
        check(m[("swa_kv_cache_bytes_total", ())] == 0, "KV-cache bytes held after every client left")
        check(m[("swa_generated_tokens_total", ())] < 16 * 60000, "disconnected streams ran to max_tokens")
    status, answer = server.complete({"prompt": "k", "temperature": 0})
    check(status == 200 and answer["choices"][0]["text"] == "ABCDE", "after disconnects: a request fails")


def sigterm_during_stream(server):
    conn, res = server.open_stream({"prompt": "r", "temperature": 0, "max_tokens": 60000})
    first = res.readline()
    check(first.startswith(b"data: ") and res.readline() == b"\n", f"first event {first!r}")
    server.proc.send_signal(signal.SIGTERM)
    data, framing = read_events(res)
    check(framing and data and data[-1] == "[DONE]", f"SIGTERM: the stream did not end with [DONE]: {data[-2:]!r}")
    if len(data) >= 2:
        last = json.loads(data[-2])
        check(last["choices"][0]["finish_reason"] == "abort", f"SIGTERM: finish {last['choices'][0]}")
    try:
        rc = server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        rc = "hung"
    check(rc == 0, f"SIGTERM: exit status {rc}, want 0")


def bad_flags(swa, model, tmp):
    missing = os.path.join(tmp, "missing.safetensors")
    for args, named in [([], "--ckpt"), (["--ckpt", missing], missing),
                        (["--ckpt", model, "--max-streams", "0"], "--max-streams"),
                        (["--ckpt", model, "--max-queue", "-1"], "--max-queue"),
                        (["--ckpt", model, "--port", "70000"], "--port"),
                        (["--ckpt", model, "--prefill-chunk", "0"], "--prefill-chunk")]:
        port = [] if "--port" in args else ["--port", "0"]
        p = subprocess.run([swa, "serve", *port, *args], capture_output=True, text=True, timeout=60)
        check(p.returncode == 1 and named in p.stderr, f"serve {args}: exit {p.returncode}, stderr {p.stderr!r}")


def main():
    swa, tool = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "bigram.safetensors")
        subprocess.run([tool, model] + [",".join(map(str, c)) for c in CHAINS], check=True)
        bad_flags(swa, model, tmp)
        server = Server(swa, model, "--max-streams", "4", "--max-queue", "12", "--max-prompt-bytes", "1000",
                        "--prefill-chunk", "3")
        try:
            status, ctype, page = server.request("GET", "/")
            check(status == 200 and ctype.startswith("text/html") and b"/v1/completions" in page, "GET /")
            requests, prompt_tokens, generated = plain_and_streamed(server)
            check_metrics(server, requests, prompt_tokens, generated)
            n_bad = bad_inputs(server)
            determinism(server, swa, model)
            queue_full_and_disconnects(server)
            check(server.stop() == 0, "SIGTERM while idle: exit status not 0")
        finally:
            if server.proc.poll() is None:
                server.proc.kill()
        server = Server(swa, model)
        try:
            sigterm_during_stream(server)
        finally:
            if server.proc.poll() is None:
                server.proc.kill()
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"ok: {requests} completions, {n_bad} bad bodies refused, 16 concurrent seeded requests, "
          "429, disconnects, SIGTERM")


if __name__ == "__main__":
    main()
