#!/usr/bin/env python3
"""`swa eval` as a process, on a bigram checkpoint (generate_test_model) whose every
probability is known in closed form: the logits after token t are s = 1/sqrt(1/264 + eps)
for t's successor and 0 for the other 258 tokens (the one-hot embedding through the final
RMSNorm; attention and MLP outputs are zero). So the bits per byte of any text follow from
counting which bytes follow their successor. Checked: the --json figures against that
count at every evaluation length, --max-bytes, --ext, the table form, the recall probe's
shape, and refusals (exit 1, a message naming the bad input, nothing on stdout).

Usage: eval_cli_check.py SWA_BINARY GENERATE_TEST_MODEL
"""
import json
import math
import os
import subprocess
import sys
import tempfile

BOS, EOS = 256, 257
EPS = 1e-5  # the config's rms_norm_eps (docs/MODEL.md default)

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def run(swa, args):
    p = subprocess.run([swa, "eval", *args], capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def expected_nats(successor, docs):
    """Summed -log p over every byte of every document, in double."""
    s = 1.0 / math.sqrt(1.0 / 264 + EPS)
    lse = math.log(math.exp(s) + 258.0)
    nats = 0.0
    for doc in docs:
        prev = BOS
        for b in doc:
            nats += lse - (s if successor.get(prev, EOS) == b else 0.0)
            prev = b
    return nats


def main():
    swa, tool = sys.argv[1], sys.argv[2]
    # a -> b -> c -> a, BOS -> a, x -> y.
    chains = [[BOS, ord("a"), ord("b"), ord("c"), ord("a")], [ord("x"), ord("y")]]
    successor = {}
    for chain in chains:
        for u, v in zip(chain, chain[1:]):
            successor[u] = v
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "bigram.safetensors")
        subprocess.run([tool, model] + [",".join(map(str, c)) for c in chains], check=True)
        data = os.path.join(tmp, "data")
        os.makedirs(data)
        docs = {"one.txt": b"abcabcabcabcxyxyab" * 40, "two.txt": b"abcq\xc3\xa9zabc" * 25, "three.md": b"xyz" * 7}
        for name, body in docs.items():
            with open(os.path.join(data, name), "wb") as f:
                f.write(body)
        all_docs = [docs[k] for k in sorted(docs)]

        rc, out, err = run(swa, ["--ckpt", model, "--data", data, "--contexts", "3,64,5000", "--json",
                                 "--recall-trials", "2", "--recall-distances", "5,50", "--chunk", "7",
                                 "--threads", "1"])
        check(rc == 0, f"--json: exit {rc}, stderr {err!r}")
        result = json.loads(out) if rc == 0 else {}
        want_bytes = sum(len(d) for d in all_docs)
        want_bpb = expected_nats(successor, all_docs) / want_bytes / math.log(2)
        check(result.get("bytes") == want_bytes, f"bytes {result.get('bytes')}, want {want_bytes}")
        check(result.get("documents") == 3, f"documents {result.get('documents')}, want 3")
        contexts = result.get("contexts", [])
        check([c["context"] for c in contexts] == [3, 64, 5000], f"contexts {contexts}")
        for c in contexts:
            check(abs(c["bits_per_byte"] - want_bpb) < 1e-5 * want_bpb,
                  f"context {c['context']}: {c['bits_per_byte']} bits per byte, want {want_bpb}")
        recall = result.get("recall", [])
        check(len(recall) == 2 and all(0 <= r["accuracy"] <= 1 and r["predicted"] == 2 * 8 for r in recall),
              f"recall {recall}")
        check([r.get("distance") for r in recall] == [5, 50], f"recall distances {recall}")

        # --ext and --max-bytes choose what is scored.
        rc, out, err = run(swa, ["--ckpt", model, "--data", data, "--ext", "md", "--contexts", "16", "--json",
                                 "--recall-trials", "0"])
        result = json.loads(out) if rc == 0 else {}
        check(rc == 0 and result.get("bytes") == len(docs["three.md"]) and result.get("recall") == [],
              f"--ext md: {rc} {out!r} {err!r}")
        if rc == 0:
            want = expected_nats(successor, [docs["three.md"]]) / len(docs["three.md"]) / math.log(2)
            check(abs(result["contexts"][0]["bits_per_byte"] - want) < 1e-5 * want, f"--ext md: {result}")
        rc, out, err = run(swa, ["--ckpt", model, "--data", data, "--max-bytes", "100", "--contexts", "16",
                                 "--json", "--recall-trials", "0"])
        check(rc == 0 and json.loads(out or "{}").get("bytes") == 100, f"--max-bytes: {rc} {out!r} {err!r}")

        # The table.
        rc, out, err = run(swa, ["--ckpt", model, "--data", data, "--contexts", "8", "--recall-trials", "1"])
        check(rc == 0 and f"| 8 | {want_bpb:.4f} |" in out and "recall at distance" in out, f"table: {out!r}")
        check("context 8:" in err, f"no progress on stderr: {err!r}")

        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        missing = os.path.join(tmp, "missing.safetensors")
        bad = [
            (["--data", data], "--ckpt"),
            (["--ckpt", model], "--data"),
            (["--ckpt", missing, "--data", data], missing),
            (["--ckpt", model, "--data", data, "--contexts", "64,x"], "--contexts"),
            (["--ckpt", model, "--data", data, "--contexts", "0"], "--contexts"),
            (["--ckpt", model, "--data", data, "--contexts", ""], "--contexts"),
            (["--ckpt", model, "--data", data, "--max-bytes", "-1"], "--max-bytes"),
            (["--ckpt", model, "--data", data, "--recall-trials", "-1"], "--recall-trials"),
            (["--ckpt", model, "--data", data, "--recall-distances", "4,-2"], "--recall-distances"),
            (["--ckpt", model, "--data", data, "--chunk", "0"], "chunk"),
            (["--ckpt", model, "--data", data, "--split", "test"], "--split"),
            (["--ckpt", model, "--data", os.path.join(tmp, "nowhere")], "nowhere"),
            (["--ckpt", model, "--data", empty], empty),
        ]
        for args, named in bad:
            rc, out, err = run(swa, args)
            check(rc != 0, f"{args}: exit {rc}, want non-zero")
            check(named in err, f"{args}: stderr {err!r} does not name {named!r}")
            check(out == "", f"{args}: stdout {out!r}")

    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"ok: bits per byte {want_bpb:.5f} as predicted at 3 lengths, {len(bad)} refusals")


if __name__ == "__main__":
    main()
