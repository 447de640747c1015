"""swa's safetensors reader and writer against Hugging Face's own safetensors package.

Usage: safetensors_interop.py PATH/TO/safetensors_tool

(a) `safetensors_tool write` makes a file that safetensors.numpy.load_file / safe_open and
    safetensors.deserialize (for BF16, which numpy lacks) must read with exactly the values
    documented in tests/safetensors_tool.cc.
(b) A file written by safetensors (save_file for F32, F16 and F64; serialize_file with the
    "bfloat16" dtype for raw bf16 bits) must read back through `safetensors_tool read` with
    the right dtypes, shapes, metadata and value sums.
Exits non-zero, with a message, on the first mismatch.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
from safetensors import TensorSpec, deserialize, safe_open, serialize_file
from safetensors.numpy import load_file, save_file


def check(condition, message):
    if not condition:
        sys.exit("FAIL: " + message)


def check_tool_file(tool, directory):
    path = os.path.join(directory, "from_swa.safetensors")
    subprocess.run([tool, "write", path], check=True)

    with safe_open(path, framework="np") as f:
        check(f.metadata() == {"format": "pt", "tool": "swa safetensors_tool"}, f"metadata {f.metadata()}")
        check(sorted(f.keys()) == ["bf16.ties", "f32.empty", "f32.matrix", "f32.scalar"], f"keys {f.keys()}")
        matrix = f.get_tensor("f32.matrix")
    want = np.array([[-1.875, -1.125, -0.375], [0.375, 1.125, 1.875]], dtype=np.float32)
    check(matrix.dtype == np.float32 and matrix.shape == (2, 3), f"matrix {matrix.dtype} {matrix.shape}")
    check(np.array_equal(matrix, want), f"matrix values {matrix}")

    # numpy has no bfloat16: load_file rejects the file, so the reference parser's raw view
    # (deserialize) gives the BF16 bits.
    try:
        load_file(path)
        check(False, "load_file unexpectedly read BF16 into numpy")
    except TypeError:
        pass
    tensors = {}
    with open(path, "rb") as fh:
        raw = fh.read()
    for name, info in deserialize(raw):
        tensors[name] = info
    check(tensors["bf16.ties"]["dtype"] == "BF16" and tensors["bf16.ties"]["shape"] == [6], "bf16 header")
    bits = np.frombuffer(bytes(tensors["bf16.ties"]["data"]), dtype="<u2")
    # Round to nearest even, worked out by hand: 1 -> 3f80; 1 + 2^-8 is halfway between
    # 3f80 and 3f81 -> even 3f80; 1 + 3 * 2^-8 halfway between 3f81 and 3f82 -> 3f82;
    # -2.5 -> c020; 3.14159265 lies between 3.140625 (4049) and 3.15625 (404a) -> 4049;
    # 0.001 is 3a83126f, low half below 8000 -> 3a83.
    want_bits = [0x3F80, 0x3F80, 0x3F82, 0xC020, 0x4049, 0x3A83]
    check(list(bits) == want_bits, f"bf16 bits {[hex(b) for b in bits]}")
    scalar = tensors["f32.scalar"]
    check(scalar["shape"] == [] and np.frombuffer(bytes(scalar["data"]), "<f4")[0] == 7.0, "scalar")
    empty = tensors["f32.empty"]
    check(empty["shape"] == [0, 3] and len(empty["data"]) == 0, "empty tensor")

    # The header JSON starts the data region 8-byte aligned, as the reference writer does.
    header_len = int.from_bytes(raw[:8], "little")
    check((8 + header_len) % 8 == 0, f"data region at {8 + header_len}")


def parse_read(output):
    meta, tensors = {}, {}
    for line in output.splitlines():
        kind, rest = line.split(" ", 1)
        if kind == "meta":
            key, value = rest.split(" ", 1)
            meta[key] = value
        else:
            name, dtype, shape, total = rest.split(" ")
            extents = [] if shape == "-" else [int(e) for e in shape.split(",")]
            tensors[name] = (dtype, extents, float(total))
    return meta, tensors


def check_python_file(tool, directory):
    path = os.path.join(directory, "from_python.safetensors")
    rng = np.random.default_rng(5)
    f32 = rng.standard_normal((3, 4)).astype(np.float32)
    f16 = rng.standard_normal((5,)).astype(np.float16)
    f64 = rng.standard_normal((2, 2, 2))
    save_file({"w.f32": f32, "w.f16": f16, "w.f64": f64}, path, metadata={"format": "pt", "who": "python"})
    got_meta, got = parse_read(subprocess.run([tool, "read", path], check=True, capture_output=True,
                                              text=True).stdout)
    check(got_meta == {"format": "pt", "who": "python"}, f"metadata {got_meta}")
    want = {
        "w.f32": ("F32", [3, 4], sum(float(x) for x in f32.ravel())),
        "w.f16": ("F16", [5], sum(float(x) for x in f16.ravel())),
        "w.f64": ("F64", [2, 2, 2], sum(float(np.float32(x)) for x in f64.ravel())),
    }
    for name, (dtype, shape, total) in want.items():
        check(name in got, f"{name} missing from {got}")
        check(got[name][:2] == (dtype, shape), f"{name}: {got[name]} vs {dtype} {shape}")
        check(abs(got[name][2] - total) <= 1e-12 * max(1.0, abs(total)), f"{name}: sum {got[name][2]} vs {total}")

    # BF16 through the reference serializer, from raw bits: 1.5, -2, 0.1 (3dcd), 2^-133.
    bits = np.array([0x3FC0, 0xC000, 0x3DCD, 0x0001], dtype=np.uint16)
    bf16_path = os.path.join(directory, "bf16_python.safetensors")
    serialize_file({"b": TensorSpec(dtype="bfloat16", shape=[2, 2], data_ptr=bits.ctypes.data, data_len=bits.nbytes)},
                   bf16_path, metadata={"k": "v"})
    _, got = parse_read(subprocess.run([tool, "read", bf16_path], check=True, capture_output=True,
                                       text=True).stdout)
    want_sum = 1.5 - 2.0 + float(np.uint32(0x3DCD0000).view(np.float32)) + 2.0 ** -133
    check(got["b"][:2] == ("BF16", [2, 2]), f"bf16 read {got['b']}")
    check(got["b"][2] == want_sum, f"bf16 sum {got['b'][2]!r} vs {want_sum!r}")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    tool = sys.argv[1]
    with tempfile.TemporaryDirectory() as directory:
        check_tool_file(tool, directory)
        check_python_file(tool, directory)
    print("safetensors interop: ok")


if __name__ == "__main__":
    main()
