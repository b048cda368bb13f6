"""The ``tfs`` command (also ``python -m transformer_from_scratch``).

    tfs tour     the main job: verify every module against the NumPy reference, then train a small model
    tfs verify   only the verification table
    tfs train    train a model on one of the tasks (see ``tfs train --help``)

Bad arguments and missing files end with one clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import __version__


class CLIError(Exception):
    """An error the user can act on; printed as one line."""


def _format_table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join([line, sep, *body])


def verification_table(seed: int = 0) -> tuple[str, bool]:
    """Run every registered check (float64, ours vs NumPy reference); return the table and whether all pass."""
    from .verification import run_checks

    results = run_checks(seed)
    rows = [
        [r.name, f"{r.max_abs_err:.2e}", f"{r.max_rel_err:.2e}", f"{r.rtol:.0e}", "ok" if r.passed else "FAIL"]
        for r in results
    ]
    table = _format_table(rows, ["check (float64, ours vs NumPy reference)", "max abs err", "max rel err", "rtol", ""])
    return table, all(r.passed for r in results)


def cmd_verify(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    table, ok = verification_table(args.seed)
    print(table)
    print(f"\n{'all checks passed' if ok else 'SOME CHECKS FAILED'} in {time.perf_counter() - start:.1f} s")
    return 0 if ok else 1


def cmd_tour(args: argparse.Namespace) -> int:
    print(f"transformer_from_scratch {__version__} — tour\n")
    print("1. Numerical verification against the NumPy float64 reference")
    start = time.perf_counter()
    table, ok = verification_table(args.seed)
    print(table)
    print(f"   {'all checks passed' if ok else 'SOME CHECKS FAILED'} ({time.perf_counter() - start:.1f} s)\n")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfs", description="transformer_from_scratch: verify, tour and train.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("tour", help="the main job: verification table, then a short training run")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=cmd_tour)

    p = sub.add_parser("verify", help="verify every module against the NumPy float64 reference")
    p.add_argument("--seed", type=int, default=0, help="random seed for the check inputs (default 0)")
    p.set_defaults(func=cmd_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except CLIError as e:
        print(f"tfs: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"tfs: error: file not found: {e.filename or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tfs: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
