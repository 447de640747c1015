#!/usr/bin/env python3
"""`swa train` as a process: SIGINT and SIGTERM stop a run after a step with a checkpoint
that resumes (exit 130 and 143), bad data is refused with exit 1 and nothing created,
and a fresh run never overwrites another.

Usage: train_cli_check.py SWA_BINARY DATA_DIR
"""
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def metadata(path):
    """The __metadata__ of a safetensors file, read from its header."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))["__metadata__"]


def step_records(run):
    """The step records of train.jsonl (complete lines only: the run may be writing)."""
    with open(os.path.join(run, "train.jsonl")) as f:
        return [json.loads(line) for line in f if line.endswith("\n") and '"loss"' in line]


def start(swa, data, run, extra=()):
    args = [swa, "train", "--preset", "uniform", "--size", "tiny", "--data", data, "--seq", "64", "--batch",
            "2", "--steps", "1000000", "--warmup", "10", "--threads", "1", "--out", run, *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def interrupt(swa, data, run, signum, expected_status):
    proc = start(swa, data, run)
    log = os.path.join(run, "train.jsonl")
    deadline = time.time() + 60
    while time.time() < deadline:
        if os.path.exists(log) and len(step_records(run)) >= 3:
            break
        if proc.poll() is not None:
            fail("the run ended before the signal: " + proc.stderr.read())
        time.sleep(0.05)
    else:
        fail("the run logged no steps within 60 s")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    if proc.returncode != expected_status:
        fail(f"{signal.Signals(signum).name}: exit status {proc.returncode}, expected {expected_status}\n{err}")
    if "stopped by a signal" not in out:
        fail("no summary line after the signal: " + out)
    step = int(metadata(os.path.join(run, "model.state.safetensors"))["step"])
    logged = [r["step"] for r in step_records(run)]
    if logged != list(range(1, step + 1)):
        fail(f"the checkpoint is at step {step} but the log holds steps {logged[:3]}..{logged[-3:]}")
    if "config" not in metadata(os.path.join(run, "model.safetensors")):
        fail("the checkpoint has no config")
    return step


def main():
    swa, data = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        run = os.path.join(tmp, "run")
        step = interrupt(swa, data, run, signal.SIGINT, 130)
        # The interrupted run resumes where it stopped and runs on.
        proc = start(swa, data, run, ["--resume", "--stop-after", str(step + 3)])
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            fail("resume after SIGINT failed: " + err)
        logged = [r["step"] for r in step_records(run)]
        if logged != list(range(1, step + 4)):
            fail(f"after the resume the log holds steps {logged}")
        interrupt(swa, data, os.path.join(tmp, "term"), signal.SIGTERM, 143)

        # A fresh run over an existing one is refused and changes nothing.
        before = {f: hashlib.sha256(open(os.path.join(run, f), "rb").read()).hexdigest() for f in os.listdir(run)}
        proc = start(swa, data, run, ["--stop-after", "1"])
        out, err = proc.communicate(timeout=60)
        after = {f: hashlib.sha256(open(os.path.join(run, f), "rb").read()).hexdigest() for f in os.listdir(run)}
        if proc.returncode != 1 or "already exists" not in err or before != after:
            fail(f"a fresh run over an existing one: status {proc.returncode}, {err!r}")

        # Missing data: exit 1, the path named, no directory made.
        missing = os.path.join(tmp, "no_such_data")
        proc = start(swa, missing, os.path.join(tmp, "never"))
        out, err = proc.communicate(timeout=60)
        if proc.returncode != 1 or missing not in err or os.path.exists(os.path.join(tmp, "never")):
            fail(f"missing data: status {proc.returncode}, {err!r}")
    print("OK: SIGINT (130) and SIGTERM (143) checkpoint and resume; bad data and reruns refused")


if __name__ == "__main__":
    main()
