#!/usr/bin/env python3
"""`swa generate` as a process, on a bigram checkpoint whose greedy text is known
(generate_test_model): stdout holds exactly the text (valid UTF-8, invalid bytes as
U+FFFD, stop strings unprinted), stderr the speeds and cache memory, the same seed gives
the same sampled text, and bad input exits 1 with a message naming what is wrong.

Usage: generate_cli_check.py SWA_BINARY GENERATE_TEST_MODEL
"""
import os
import subprocess
import sys
import tempfile

BOS = 256
FFFD = "\ufffd"

# Each chain: token ids, every one followed by the next in greedy decoding.
CHAINS = [
    [ord("a"), 0xF0, 0x9F, 0x98, 0x80, ord("b")],  # a -> U+1F600 b
    [ord("x"), 0xFF, ord("y"), 0xC3, ord("z")],  # invalid bytes
    [ord("q"), 0xE2, 0x82],  # a character cut off by EOS
    [ord(c) for c in "kABCDE"],  # for stop strings
    [BOS, ord("H"), ord("i")],  # the empty prompt
    [ord("r"), ord("R"), ord("r")],  # a loop
]

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def run(swa, args):
    p = subprocess.run([swa, "generate", *args], capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def main():
    swa, tool = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "bigram.safetensors")
        subprocess.run([tool, model] + [",".join(map(str, c)) for c in CHAINS], check=True)

        def greedy(prompt, *extra):
            return run(swa, ["--ckpt", model, "--prompt", prompt, "--temperature", "0", "--threads", "1", *extra])

        cases = [
            (("a",), "\U0001F600b"),
            (("x",), FFFD + "y" + FFFD + "z"),
            (("q",), FFFD),
            (("k", "--stop", "CD"), "AB"),
            (("k", "--stop", "BX"), "ABCDE"),
            (("k", "--stop", "E", "--stop", "zz"), "ABCD"),
            (("k", "--max-tokens", "3", "--stop", "CD"), "ABC"),
            (("",), "Hi"),
            (("r", "--max-tokens", "5"), "RrRrR"),
            (("r", "--max-tokens", "0"), ""),
            (("r", "--max-tokens", "9", "--chunk", "1", "--stream-sinks", "1", "--stream-window", "2"),
             "RrRrRrRrR"),
        ]
        for args, want in cases:
            rc, out, err = greedy(*args)
            check(rc == 0, f"{args}: exit {rc}, stderr {err!r}")
            check(out == want.encode("utf-8"), f"{args}: stdout {out!r}, want {want.encode('utf-8')!r}")

        rc, out, err = greedy("a")
        for what in ("prefill:", "decode:", "tokens/s", "KV cache:", "bytes"):
            check(what in err, f"stderr lacks {what!r}: {err!r}")
        rc, out, err = greedy("r", "--stream-sinks", "4")
        check(rc == 0 and "StreamingLLM: 4 sinks + window 1024" in err, f"--stream-sinks: {rc} {err!r}")

        # Sampling: hot enough to leave the chains; the same seed gives the same bytes.
        sample = ["--ckpt", model, "--prompt", "r", "--temperature", "30", "--max-tokens", "80"]
        first = run(swa, sample + ["--seed", "4"])
        second = run(swa, sample + ["--seed", "4"])
        other = run(swa, sample + ["--seed", "5"])
        check(first[0] == 0 and first[1] == second[1], "the same seed gave different text")
        check(first[1] != other[1], "seeds 4 and 5 gave the same text")
        try:
            first[1].decode("utf-8", "strict")
        except UnicodeDecodeError as e:
            failures.append(f"sampled text is not valid UTF-8: {e}")

        corrupt = os.path.join(tmp, "corrupt.safetensors")
        with open(corrupt, "wb") as f:
            f.write(os.urandom(4096))
        truncated = os.path.join(tmp, "truncated.safetensors")
        with open(model, "rb") as f, open(truncated, "wb") as g:
            g.write(f.read(os.path.getsize(model) // 2))
        missing = os.path.join(tmp, "missing.safetensors")
        bad = [
            (["--prompt", "a"], "--ckpt"),
            (["--ckpt", missing], missing),
            (["--ckpt", corrupt], corrupt),
            (["--ckpt", truncated], truncated),
            (["--ckpt", model, "--max-tokens", "-1"], "--max-tokens"),
            (["--ckpt", model, "--top-p", "0"], "--top-p"),
            (["--ckpt", model, "--top-p", "1.5"], "--top-p"),
            (["--ckpt", model, "--temperature", "-1"], "--temperature"),
            (["--ckpt", model, "--top-k", "-2"], "--top-k"),
            (["--ckpt", model, "--chunk", "0"], "--chunk"),
            (["--ckpt", model, "--stream-window", "8"], "--stream-window needs --stream-sinks"),
            (["--ckpt", model, "--stop", ""], "--stop"),
        ]
        for args, named in bad:
            rc, out, err = run(swa, args)
            check(rc == 1, f"{args}: exit {rc}, want 1")
            check(named in err and "error" in err, f"{args}: stderr {err!r} does not name {named!r}")
            check(out == b"", f"{args}: stdout {out!r}")

    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"ok: {len(cases)} generations, {len(bad)} refusals")


if __name__ == "__main__":
    main()
