"""The ``onebit`` command line.

Each subcommand lives in its own module in this package and exposes
``register(subparsers)``, which adds a parser whose ``func`` default takes the parsed
arguments and returns an exit code. Command modules import their heavy dependencies inside the
function that runs the command, so ``onebit --help`` and ``onebit infer`` start without torch.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="onebit",
        description="Train, analyse, export and run binary neural networks (DAB-Net, BiPointNet).",
    )
    from onebit import __version__

    parser.add_argument("--version", action="version", version=f"onebit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
