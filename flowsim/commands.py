"""The ``flowsim`` subcommands beyond ``run``: analyze, plot, field, reproduce, bench.

Glue only: each reads files, calls the library, writes files, and prints a line saying
what it wrote.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flowsim.config import ConfigError, parse_experiment
from flowsim.records import StopRule


def _die(msg: str) -> int:
    print(f"flowsim: error: {msg}", file=sys.stderr)
    return 2


def _load_results(folder: Path):
    """flows.csv and the experiment recorded in meta.json, or a clear error."""
    from flowsim.sweep import read_flows

    csv, meta = folder / "flows.csv", folder / "meta.json"
    if not csv.exists():
        raise FileNotFoundError(f"{folder} holds no flows.csv: run `flowsim run EXPERIMENT --out {folder}` first")
    exp = parse_experiment(json.loads(meta.read_text())["experiment"], source=str(meta)) if meta.exists() else None
    return read_flows(csv), exp


def analyze(folder: Path) -> list[Path]:
    """Write regions.csv, claims.csv and claims.md beside flows.csv."""
    from flowsim.analysis import ClaimThresholds, claims_markdown, evaluate_claims, region_table

    flows, exp = _load_results(folder)
    stop = exp.stop if exp else StopRule()
    thresholds = ClaimThresholds(**(exp.claims if exp else {}))
    regions = region_table(flows)
    claims = evaluate_claims(flows, stop, thresholds)
    title = f"Claims of the paper, measured on `{folder.name}`"
    written = [folder / "regions.csv", folder / "claims.csv", folder / "claims.md"]
    regions.to_csv(written[0], index=False)
    claims.to_csv(written[1], index=False)
    written[2].write_text(claims_markdown(claims, title=title))
    return written


def plot(folder: Path, fmt: str = "png") -> list[Path]:
    """Write the heatmaps, facets and path figures into folder/figures."""
    from flowsim.plotting import plot_results

    flows, exp = _load_results(folder)
    kw = {"p1_cuts": exp.p1_cuts, "p2_cuts": exp.p2_cuts, "stop": exp.stop} if exp else {}
    return plot_results(flows, folder / "figures", fmt=fmt, **kw)


def cmd_analyze(args: argparse.Namespace) -> int:
    try:
        for path in analyze(Path(args.results)):
            print(f"wrote {path}")
    except (FileNotFoundError, ConfigError, ValueError) as exc:
        return _die(str(exc))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    try:
        paths = plot(Path(args.results), args.format)
    except (FileNotFoundError, ConfigError, ValueError) as exc:
        return _die(str(exc))
    print(f"wrote {len(paths)} figures to {Path(args.results) / 'figures'}")
    return 0


def cmd_field(args: argparse.Namespace) -> int:
    from flowsim.plotting import plot_field

    try:
        out = plot_field(beta=args.beta, ref_w=args.ref_w, ref_l=args.ref_l, out=Path(args.out),
                         log_scale=not args.linear)  # fmt: skip
    except ValueError as exc:
        return _die(str(exc))
    print(f"wrote {out}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from flowsim.report import reproduce

    try:
        reproduce(Path(args.experiments), Path(args.results), n_jobs=args.n_jobs, progress=not args.quiet)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        return _die(str(exc))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from flowsim.bench import main as bench_main

    return bench_main(args.bench_args)


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("analyze", help="region tables and claim verdicts for a results folder")
    a.add_argument("results", help="a results folder holding flows.csv (and meta.json)")
    a.set_defaults(func=cmd_analyze)

    p = sub.add_parser("plot", help="heatmaps over the initial conditions, facets and paths")
    p.add_argument("results", help="a results folder holding flows.csv (and meta.json)")
    p.add_argument("--format", choices=["png", "svg", "pdf"], default="png")
    p.set_defaults(func=cmd_plot)

    f = sub.add_parser("field", help="the paper's Figure 1 redrawn: loss surface and gradient field")
    f.add_argument("--beta", type=float, default=0.1)
    f.add_argument("--ref-w", type=float, default=1.0)
    f.add_argument("--ref-l", type=float, default=1.0)
    f.add_argument("--out", default="figure1.png", help="output file (format from its suffix)")
    f.add_argument("--linear", action="store_true", help="arrow length proportional to |grad L| (the paper's way)")
    f.set_defaults(func=cmd_field)

    r = sub.add_parser("reproduce", help="run, analyse and plot every shipped experiment; write results/README.md")
    r.add_argument("--experiments", default="experiments", help="folder of experiment files (default experiments)")
    r.add_argument("--results", default="results", help="results folder (default results)")
    r.add_argument("--n-jobs", type=int, default=-1)
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_reproduce)

    b = sub.add_parser("bench", help="the performance benchmark (experiments/benchmark.py)", add_help=False)
    b.add_argument("bench_args", nargs=argparse.REMAINDER)
    b.set_defaults(func=cmd_bench)


__all__ = ["analyze", "plot", "register"]
