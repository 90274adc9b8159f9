"""Turns a CUDA source into C++ for the CPU emulation (README.md in this folder).

    python transform_launches.py cuda/landscape.cu BUILD/landscape_emulated.cpp

Every kernel launch ``kernel<<<grid, block>>>(args);`` becomes

    ::emu::launch(grid, block, [&](auto&&... emu_args) { kernel(emu_args...); }, args);

which evaluates the arguments once and runs the kernel for every (block, thread) in
turn (the stand-in cuda_runtime.h). Nothing else changes; line breaks are kept and
a #line directive names the original file, so compiler messages point into it. The
output goes to the build folder only: the transformed source is never committed.

Refused, with a message: what a sequential emulation cannot reproduce (shared memory,
barriers, atomics, warp intrinsics, streams, launches with more than two
configuration arguments) and launches the script cannot parse.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

# Features whose meaning depends on threads running together.
UNSUPPORTED = re.compile(
    r"\b(__shared__|__syncthreads\w*|__syncwarp|__shfl\w*|__ballot\w*|__any_sync|__all_sync|"
    r"atomic[A-Z]\w*|cooperative_groups|cudaStream\w*|cudaLaunch\w*|__ldg|tex\w*Object)\b"
)
IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


class TransformError(Exception):
    pass


def line_of(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + 1


def mask_comments_and_literals(src: str) -> str:
    """src with comments and string/char literals blanked (same length, newlines kept),
    so that the scanner below sees only code."""
    out = list(src)
    i, n = 0, len(src)

    def blank(a: int, b: int) -> None:
        for j in range(a, b):
            if out[j] != "\n":
                out[j] = " "

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            blank(i + 1, j)
            i = j + 1
        else:
            i += 1
    return "".join(out)


def matching(code: str, pos: int, open_: str, close: str) -> int:
    """Index of the bracket closing the one at pos (code[pos] == open_)."""
    depth = 0
    for j in range(pos, len(code)):
        if code[j] == open_:
            depth += 1
        elif code[j] == close:
            depth -= 1
            if depth == 0:
                return j
    raise TransformError(f"unbalanced {open_!r}")


def split_top_level(text: str) -> list[str]:
    """text split at the commas outside (), [] and {}."""
    parts, depth, start = [], 0, 0
    for j, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:j])
            start = j + 1
    parts.append(text[start:])
    return parts


def kernel_start(code: str, end: int) -> int:
    """Start of the kernel expression that ends just before code[end] ("<<<"): a
    possibly qualified name with optional template arguments."""
    j = end
    while j > 0 and code[j - 1].isspace():
        j -= 1
    if j > 0 and code[j - 1] == ">":  # template arguments
        depth = 0
        k = j - 1
        while k >= 0:
            if code[k] == ">":
                depth += 1
            elif code[k] == "<":
                depth -= 1
                if depth == 0:
                    break
            k -= 1
        if k < 0:
            raise TransformError("unbalanced template arguments before <<<")
        j = k
    while True:  # name, then ::name parts
        k = j
        while k > 0 and (code[k - 1].isalnum() or code[k - 1] == "_"):
            k -= 1
        if k == j:
            raise TransformError("no kernel name before <<<")
        j = k
        if j >= 2 and code[j - 2 : j] == "::":
            j -= 2
            continue
        return j


def transform(src: str, origin: str) -> tuple[str, int]:
    code = mask_comments_and_literals(src)
    bad = UNSUPPORTED.search(code)
    if bad:
        raise TransformError(
            f"{origin}:{line_of(src, bad.start())}: {bad.group(0)} is not emulated: kernels run "
            "one thread after another (see tests/cuda_emulation/README.md)")
    out, pos, count = [], 0, 0
    while True:
        at = code.find("<<<", pos)
        if at < 0:
            break
        line = line_of(src, at)
        try:
            start = kernel_start(code, at)
            close = code.find(">>>", at + 3)
            if close < 0:
                raise TransformError("no >>> after <<<")
            config = split_top_level(src[at + 3 : close])
            if len(config) != 2:
                raise TransformError(
                    "only <<<grid, block>>> is emulated (no dynamic shared memory, no streams)")
            paren = close + 3
            while paren < len(code) and code[paren].isspace():
                paren += 1
            if paren >= len(code) or code[paren] != "(":
                raise TransformError("no argument list after >>>")
            end = matching(code, paren, "(", ")")
        except TransformError as e:
            raise TransformError(f"{origin}:{line}: {e}") from None
        kernel = src[start:at].strip()
        args = src[paren + 1 : end]
        grid, block = (c.strip() for c in config)
        call = f"[&](auto&&... emu_args) {{ {kernel}(emu_args...); }}"
        # The text between the kernel name and its arguments may hold line breaks:
        # they are kept, so that the lines below keep their numbers.
        gap = "\n" * src.count("\n", start, paren + 1)
        if args.strip():
            rest = "," + (gap or ("" if args[:1].isspace() else " ")) + args
        else:
            rest = gap
        out.append(src[pos:start])
        out.append(f"::emu::launch({grid}, {block}, {call}{rest})")
        pos = end + 1
        count += 1
    out.append(src[pos:])
    return "".join(out), count


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="the CUDA source (cuda/landscape.cu)")
    ap.add_argument("output", help="the C++ file to write (in a build folder)")
    args = ap.parse_args(argv)
    with open(args.source, encoding="utf-8") as f:
        src = f.read()
    origin = os.path.abspath(args.source)
    try:
        text, count = transform(src, origin)
    except TransformError as e:
        print(f"transform_launches: {e}", file=sys.stderr)
        return 1
    if count == 0:
        print(f"transform_launches: no kernel launch in {origin}", file=sys.stderr)
        return 1
    header = ("// Generated by tests/cuda_emulation/transform_launches.py from the file named\n"
              "// below (kernel launches turned into emu::launch calls); do not edit.\n")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(header + f'#line 1 "{origin}"\n' + text)
    os.replace(tmp, args.output)
    print(f"transform_launches: {count} kernel launches in {origin} -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
