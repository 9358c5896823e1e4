"""The ``flowsim`` command: argparse subcommands, glue only (no numerics here).

    flowsim run EXPERIMENT.toml [--out DIR] [--n-jobs N] [--resume] [--quiet] [--backend dask --scheduler ADDR]
    flowsim analyze RESULTS_DIR
    flowsim plot RESULTS_DIR [--format png|svg|pdf]
    flowsim field [--beta B] [--ref-w R] [--ref-l R] [--out FILE]
    flowsim reproduce [--results DIR] [--n-jobs N]
    flowsim bench [--quick]

Exit status: 0 on success, 1 when a sweep ends with failed flows, 2 for bad input
(an invalid experiment file, an output folder that would be overwritten, ...).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from flowsim.config import ConfigError, load_experiment


def _die(msg: str) -> int:
    print(f"flowsim: error: {msg}", file=sys.stderr)
    return 2


def cmd_run(args: argparse.Namespace) -> int:
    from flowsim.sweep import SweepError, run_sweep

    try:
        exp = load_experiment(args.experiment)
    except ConfigError as exc:
        return _die(str(exc))
    out = Path(args.out) if args.out else Path("results") / exp.name
    try:
        meta = run_sweep(
            exp, out, n_jobs=args.n_jobs, resume=args.resume, progress=not args.quiet,
            backend=args.backend, scheduler=args.scheduler, chunk_size=args.chunk_size,
        )  # fmt: skip
    except (SweepError, ValueError) as exc:
        return _die(str(exc))
    counts = ", ".join(f"{k} {v}" for k, v in meta["counts_by_status"].items())
    rate = meta["rows"] / meta["wall_time_s"] if meta["wall_time_s"] else float("inf")
    print(f"{exp.name}: {meta['rows']} flows in {meta['wall_time_s']:.1f} s ({rate:,.0f}/s) -> {out}/flows.csv")
    print(f"  by status: {counts}")
    return 1 if meta["counts_by_status"].get("failed") else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowsim", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run an experiment sweep into a results folder")
    r.add_argument("experiment", help="experiment file (TOML), e.g. experiments/paper.toml")
    r.add_argument("--out", help="output folder (default: results/<name>)")
    r.add_argument("--n-jobs", type=int, default=-1, help="parallel workers (default -1: all cores)")
    r.add_argument("--chunk-size", type=int, default=None, help="flows per task (default: automatic)")
    r.add_argument("--resume", action="store_true", help="continue an interrupted sweep in --out")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--backend", choices=["loky", "dask"], default="loky", help="joblib backend (default loky)")
    r.add_argument("--scheduler", help="dask scheduler address for --backend dask, e.g. tcp://host:8786")
    r.set_defaults(func=cmd_run)
    _add_more(sub)
    return p


def _add_more(sub: argparse._SubParsersAction) -> None:
    """Subcommands that live in flowsim.commands (analysis, figures, reproduction, benchmark)."""
    try:
        from flowsim import commands
    except ImportError:
        return
    commands.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the benchmark parses its own options (--quick, --out, --repeats)
        from flowsim.bench import main as bench_main

        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        hint = {
            "run": "finished chunks are kept: add --resume to the same command to continue",
            "reproduce": "nothing was published; results/ is as it was",
        }.get(getattr(args, "command", ""), "nothing was written")
        print(f"flowsim: interrupted; {hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
