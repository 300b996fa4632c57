"""``onebit zoo [NAME] [--json] [--verify]``: the pretrained entries that ship with onebit (no torch)."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "zoo", help="list the pretrained models that ship with onebit (onebit.zoo)",
        description="Print the table of onebit.zoo entries (model, binarization, points, measured test accuracy, "
                    "schedule, file sizes), or one entry's metadata. A zoo name works wherever `onebit infer` "
                    "takes a .onebit file.")
    p.add_argument("name", nargs="?", default=None, help="print this entry's metadata (JSON)")
    p.add_argument("--json", action="store_true", help="the whole table as JSON")
    p.add_argument("--verify", action="store_true", help="check every shipped file against its sha256")
    p.set_defaults(func=run)


def _kb(n) -> str:
    return "-" if not n else (f"{n / 1024:.0f} KB" if n < 2**20 else f"{n / 2**20:.1f} MB")


def table(root=None) -> str:
    from onebit.zoo import info, names, total_bytes

    cols = ("name", "model", "binarize", "points", "test OA %", "measured with", "epochs", "schedule", "weights",
            ".onebit")
    rows = []
    for n in names(root):
        m = info(n, root)
        eng = m.get("engine") or {}
        rows.append((n, m["model"], m["binarize"], str(m["points"]), f"{m['oa']:.2f}",
                     m["oa_measured_with"].split(" (")[0], str(m["epochs"]), m.get("schedule") or "",
                     f"{_kb(m['bytes'])} ({m['weights']['storage']})", _kb(eng.get("bytes"))))
    if not rows:
        return "onebit zoo: no entries"
    w = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w[i]) for i, c in enumerate(cols))
    out = [line, "  ".join("-" * x for x in w)]
    out += ["  ".join(v.ljust(w[i]) for i, v in enumerate(r)) for r in rows]
    out.append(f"{len(rows)} entries, {total_bytes(root) / 2**20:.1f} MB shipped; test OA on "
               f"the full test split of the entry's protocol (`onebit zoo NAME` for the details and the commands)")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    from onebit.zoo import ZooError, info, names, verify

    try:
        if args.verify:
            for n in ([args.name] if args.name else names()):
                for kind, p in verify(n).items():
                    print(f"ok  {n}  {kind}  {p}")
            return 0
        if args.name:
            print(json.dumps(info(args.name), indent=1))
            return 0
    except ZooError as e:
        print(f"onebit zoo: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([{k: v for k, v in info(n).items() if k not in ("train", "model_config", "class_names",
                                                                           "check")} for n in names()], indent=1))
        return 0
    print(table())
    return 0
