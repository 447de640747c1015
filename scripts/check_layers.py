#!/usr/bin/env python3
"""The dependency rule of README.md "Layout", checked over the #include lines of src/.

    common <- ops <- attention <- cache <- model <- train, generate <- serve <- cli,
    with api (and the test harness) on top of the library layers.

A file may include files of its own group or of any lower layer; never a higher layer
and never a sibling group of the same layer (train and generate, the CPU and CUDA
backends). Inside attention, the rule, schedule, validation and oracle sit below the
backends (attention/cpu, attention/cuda), and the one internal entry (attention/entry.*)
sits above them. The oracle (attention/reference.*) may include only the problem, the
rule and common/: never anything fast. Public headers (include/swa/) include only each
other.

Usage: check_layers.py ROOT      exits 1 and lists every violation
       check_layers.py --self-test   checks that the checker catches each kind
"""
import pathlib
import re
import sys

# (layer, group) of a path under src/, by longest matching prefix.
LAYERS = [
    ("common/", 0, "common"),
    ("ops/", 1, "ops"),
    ("attention/", 2.0, "attention"),
    ("attention/cpu/", 2.1, "attention/cpu"),
    ("attention/cuda/", 2.1, "attention/cuda"),
    ("attention/entry.", 2.2, "attention/entry"),
    ("cache/", 3, "cache"),
    ("model/", 4, "model"),
    ("train/", 5, "train"),
    ("generate/", 5, "generate"),
    ("serve/", 6, "serve"),
    ("harness/", 7, "harness"),
    ("api/", 7, "api"),
    ("cli/", 8, "cli"),
]
ORACLE = ("attention/reference.",)
ORACLE_MAY_INCLUDE = ("attention/reference.h", "attention/problem.h", "attention/rule.h", "common/")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def layer_of(path):
    best = None
    for prefix, layer, group in LAYERS:
        if path.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, layer, group)
    return None if best is None else best[1:]


def violations(files):
    """files: {path relative to src/ or 'include/...': text}. Returns messages."""
    out = []
    for path, text in sorted(files.items()):
        for target in INCLUDE.findall(text):
            if ".." in target.split("/"):
                out.append(f"{path}: includes {target} with '..'")
                continue
            if path.startswith("include/"):
                if not target.startswith("swa/"):
                    out.append(f"{path}: a public header includes {target}")
                continue
            if target.startswith(("swa/", "hwy/")) or "/" not in target:
                continue  # public API, Highway, or a system header in quotes
            if path.startswith(ORACLE) and not target.startswith(ORACLE_MAY_INCLUDE):
                out.append(f"{path}: the oracle includes {target} (only the problem, the rule and common/)")
                continue
            src, dst = layer_of(path), layer_of(target)
            if src is None:
                out.append(f"{path}: not in any layer of the README's Layout")
                break
            if dst is None:
                out.append(f"{path}: includes {target}, which is in no layer")
                continue
            if dst[1] != src[1] and dst[0] >= src[0]:
                out.append(f"{path} (layer {src[1]}) includes {target} (layer {dst[1]}), which is "
                           f"{'a sibling' if dst[0] == src[0] else 'above it'}")
    return out


def read_tree(root):
    files = {}
    for base in ("src", "include"):
        for p in sorted((root / base).rglob("*")):
            if p.suffix in (".h", ".cc", ".cu", ".cuh", ".hpp"):
                rel = p.relative_to(root / "src") if base == "src" else p.relative_to(root)
                files[str(rel)] = p.read_text(encoding="utf-8")
    return files


def self_test():
    cases = {
        "ops/a.cc": ('#include "attention/rule.h"', "above it"),
        "train/a.cc": ('#include "generate/b.h"', "a sibling"),
        "attention/cpu/a.cc": ('#include "attention/entry.h"', "above it"),
        "attention/rule.cc": ('#include "attention/cpu/forward.h"', "above it"),
        "attention/reference.cc": ('#include "attention/schedule.h"', "the oracle"),
        "attention/reference.h": ('#include "ops/gemm.h"', "the oracle"),
        "cache/a.cc": ('#include "../model/x.h"', "'..'"),
        "include/swa/a.h": ('#include "common/error.h"', "public header"),
        "newdir/a.cc": ('#include "common/error.h"', "not in any layer"),
    }
    ok = True
    for path, (line, expect) in cases.items():
        found = violations({path: line + "\n"})
        if len(found) != 1 or expect not in found[0]:
            print(f"self-test: {path} with {line!r}: expected a violation mentioning {expect!r}, got {found}")
            ok = False
    allowed = {
        "attention/entry.cc": '#include "attention/cpu/forward.h"\n#include "attention/problem.h"\n',
        "attention/cpu/forward.cc": '#include "attention/schedule.h"\n#include "ops/gemm-inl.h"\n',
        "cli/main.cc": '#include "api/x.h"\n#include "model/config.h"\n',
        "attention/reference.cc": '#include "attention/rule.h"\n#include "common/dtype.h"\n',
    }
    if violations(allowed):
        print(f"self-test: allowed includes reported: {violations(allowed)}")
        ok = False
    print("self-test passed" if ok else "self-test FAILED")
    return 0 if ok else 1


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "--self-test":
        return self_test()
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    root = pathlib.Path(sys.argv[1])
    files = read_tree(root)
    found = violations(files)
    for v in found:
        print(v)
    print(f"{len(files)} files checked, {len(found)} violations of the dependency rule")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
