"""Instructions per 64 bit-MACs of the packed-bit kernels, NEON (aarch64) next to AVX-512, from the generated assembly.

    python benchmarks/arm_instruction_counts.py            # markdown table (docs/runtime.md, "NEON")
    python benchmarks/arm_instruction_counts.py --loops    # and every innermost loop with its instruction mix

Speed on ARM cannot be measured on an x86 host (qemu is not a timing device), so this counts what the
compilers emit. Each kernel template is instantiated in a probe translation unit that includes the kernel source
(csrc/kernels_neon.cpp, built with ``aarch64-linux-gnu-g++ -O3 -ffp-contract=off -S``; csrc/kernels.cpp with the
host ``g++``, same flags) and the innermost loop of the instantiation (the label with a backward branch and no
other loop inside it) is counted, loads, broadcasts and loop overhead included. One 64 bit-MAC = one 64-bit word
of one row against one output channel (64 binary multiply-accumulates); the loop body's count divided by the
(rows x channels x words) it covers gives the table's figure.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["-std=c++17", "-O3", "-ffp-contract=off", "-fno-math-errno", f"-I{REPO / 'csrc'}", "-S"]

# (row of the table, NEON symbol regex, NEON units per loop pass, AVX-512 symbol regex, AVX-512 units per pass)
# units = rows x channels x words covered by one pass of the innermost loop
KERNELS = [
    ("XNOR tile, K > 256 (6 rows, per word)", r"pc_tile_tILi6ELb0E", 6 * 8, r"pc_tile_512ILi6ELb0E", 6 * 32),
    ("AND tile (DAB), K > 256", r"pc_tile_tILi6ELb1E", 6 * 8, r"pc_tile_512ILi6ELb1E", 6 * 32),
    ("short rows, bits out, W = 1 (K <= 64)", r"short_rows_tILi1ELi4ELb0E", 32 * 1, r"thr_rows_512ILi1E", 32 * 1),
    ("short rows, bits out, W = 2 (K <= 128)", r"short_rows_tILi2ELi2ELb0E", 16 * 2, r"thr_rows_512ILi2E", 32 * 2),
    ("short rows, bits out, W = 3 (K <= 192)", r"short_rows_tILi3ELi1ELb0E", 8 * 3, r"thr_rows_512ILi3E", 32 * 3),
    ("short rows, bits out, W = 4 (K <= 256)", r"short_rows_tILi4ELi1ELb0E", 8 * 4, r"thr_rows_512ILi4E", 32 * 4),
    ("OR pooling, W = 1", r"short_rows_tILi1ELi4ELb1E", 32 * 1, r"or_rows_512ILi1E", 32 * 1),
    ("OR pooling, W = 2", r"short_rows_tILi2ELi2ELb1E", 16 * 2, r"or_rows_512ILi2E", 32 * 2),
    ("OR pooling, W = 3", r"short_rows_tILi3ELi1ELb1E", 8 * 3, r"or_rows_512ILi3E", 32 * 3),
    ("OR pooling, W = 4 (PointNet's 128 -> 1024)", r"short_rows_tILi4ELi1ELb1E", 8 * 4, r"or_rows_512ILi4E", 32 * 4),
]

NEON_PROBE = """#include "kernels_neon.cpp"
namespace onebit {
#define P(n, ...) extern "C" void n(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, const int64_t* P, \\
                                    uint8_t* o, uint32_t* pc) { __VA_ARGS__; }
P(p1, pc_tile_t<6, false>(X, ldx, wp, M, pc))
P(p2, pc_tile_t<6, true>(X, ldx, wp, M, pc))
P(p3, short_rows_t<1, 4, false>(X, ldx, M, wp, P, o, 8, ~0u))
P(p4, short_rows_t<2, 2, false>(X, ldx, M, wp, P, o, 8, ~0u))
P(p5, short_rows_t<3, 1, false>(X, ldx, M, wp, P, o, 8, ~0u))
P(p6, short_rows_t<4, 1, false>(X, ldx, M, wp, P, o, 8, ~0u))
P(p7, pc[0] = short_rows_t<1, 4, true>(X, ldx, M, wp, P, nullptr, 0, ~0u))
P(p8, pc[0] = short_rows_t<2, 2, true>(X, ldx, M, wp, P, nullptr, 0, ~0u))
P(p9, pc[0] = short_rows_t<3, 1, true>(X, ldx, M, wp, P, nullptr, 0, ~0u))
P(p10, pc[0] = short_rows_t<4, 1, true>(X, ldx, M, wp, P, nullptr, 0, ~0u))
}
"""

X86_PROBE = """#include "kernels.cpp"
namespace onebit {
#define P(n, ...) extern "C" T512 void n(const uint64_t* X, size_t ldx, int M, const uint64_t* wp, const int64_t* P, \
                                         uint32_t* pc) { __VA_ARGS__; }
P(p1, pc_tile_512<6, false>(X, ldx, wp, M, pc))
P(p2, pc_tile_512<6, true>(X, ldx, wp, M, pc))
P(p3, thr_rows_512<1>(X, ldx, M, wp, P, pc, 2))
P(p4, thr_rows_512<2>(X, ldx, M, wp, P, pc, 2))
P(p5, thr_rows_512<3>(X, ldx, M, wp, P, pc, 2))
P(p6, thr_rows_512<4>(X, ldx, M, wp, P, pc, 2))
P(p7, pc[0] = or_rows_512<1>(X, ldx, M, wp, P, ~0u))
P(p8, pc[0] = or_rows_512<2>(X, ldx, M, wp, P, ~0u))
P(p9, pc[0] = or_rows_512<3>(X, ldx, M, wp, P, ~0u))
P(p10, pc[0] = or_rows_512<4>(X, ldx, M, wp, P, ~0u))
}
"""


def innermost_loops(asm: str, symbol_re: str) -> list[tuple[int, collections.Counter]]:
    """(instruction count, mnemonics) of every innermost loop in the functions whose name matches."""
    lines = asm.splitlines()
    out, cur, body = [], None, []
    funcs: dict[str, list[str]] = {}
    for line in lines:
        m = re.match(r"^([A-Za-z_][\w.$]*):", line)
        if m and not line.startswith(".L"):
            cur = m.group(1)
            funcs[cur] = body = []
        if cur:
            body.append(line)
    for name, body in funcs.items():
        if not re.search(symbol_re, name):
            continue
        labels = {m.group(1): i for i, line in enumerate(body) if (m := re.match(r"^(\.L\w+):", line))}
        loops = []
        for i, line in enumerate(body):
            parts = line.split()
            if parts and re.match(r"^(b(\.\w+)?|b[a-z]{2}|cbn?z|tbn?z|j[a-z]+)$", parts[0]):
                tgt = parts[-1].split(",")[-1]
                if tgt in labels and labels[tgt] < i:
                    loops.append((labels[tgt], i))
        for a, b in loops:
            if any(a <= c and d <= b and (c, d) != (a, b) for c, d in loops):
                continue
            ins = [body[k].split()[0] for k in range(a, b + 1)
                   if body[k].strip() and body[k][:1] in " \t" and not body[k].strip().startswith((".", "//", "#"))]
            out.append((len(ins), collections.Counter(ins)))
    return out


def compile_probe(cxx: str, source: str, tmp: Path, name: str) -> str:
    src = tmp / f"{name}.cpp"
    src.write_text(source)
    subprocess.run([cxx, *FLAGS, str(src), "-o", str(tmp / f"{name}.s")], check=True)
    return (tmp / f"{name}.s").read_text()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loops", action="store_true", help="print every innermost loop's instruction mix")
    ap.add_argument("--cross", default="aarch64-linux-gnu-g++", help="aarch64 C++ compiler")
    ap.add_argument("--host", default="g++", help="x86-64 C++ compiler")
    args = ap.parse_args()
    for c in (args.cross, args.host):
        if shutil.which(c) is None:
            print(f"{c} not found (Debian: apt-get install g++-aarch64-linux-gnu)", file=sys.stderr)
            return 1
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        neon = compile_probe(args.cross, NEON_PROBE, tmp, "neon")
        x86 = compile_probe(args.host, X86_PROBE, tmp, "x86")
    print("| kernel | AVX-512: instructions / loop pass | per 64 bit-MACs | NEON: instructions / loop pass "
          "| per 64 bit-MACs |")
    print("|---|---|---|---|---|")
    for i, (row, nre, nunits, xre, xunits) in enumerate(KERNELS):
        cells = []
        # probe p<i+1> calls the instantiation (inlined, or a call to the template's own symbol)
        for asm, rx, units in ((x86, rf"^p{i + 1}$|{xre}", xunits), (neon, rf"^p{i + 1}$|{nre}", nunits)):
            # the hot loop: the longest innermost loop (the others are tails, reductions run once per tile)
            loops = [lp for lp in innermost_loops(asm, rx) if "cnt" in lp[1] or any("popcnt" in k for k in lp[1])]
            n, mix = max(loops, key=lambda t: t[0]) if loops else (0, collections.Counter())
            cells += [f"{n} ({units} units)", f"{n / units:.2f}" if n else "-"]
            if args.loops:
                print(f"<!-- {row} [{rx}]: {n}: " + " ".join(f"{k}:{v}" for k, v in mix.most_common()) + " -->")
        print(f"| {row} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
