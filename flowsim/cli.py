"""The ``flowsim`` command: argparse only; every subcommand imports its pipeline lazily.

    flowsim run EXPERIMENT.toml [--out DIR] [--n-jobs N] [--resume] [--quiet] [--backend B] [--scheduler ADDR]
                                [--scheduler-timeout S]
    flowsim analyze RESULTS [--quiet]
    flowsim plot RESULTS [--format png|svg|pdf] [--all] [--quiet]
    flowsim field [--beta B] [--ref-w R] [--ref-l R] [--out FILE] [--linear]
    flowsim reproduce [--experiments DIR] [--results DIR] [--out DIR | --update [--allow-dirty]] [--n-jobs N]
                      [--quiet]
    flowsim bench [--quick] [...]
    flowsim explore [RUN_DIR] [--port P]
    flowsim trace RUN [--out DIR] [--beta B]

Exit status:

    0    success
    1    a sweep finished, but with failed flows (rows with status "failed")
    2    bad input or a bad environment: one line, no traceback, naming the file, key or path
         and what to do (an invalid experiment file, an output folder that is not empty or is
         in use by another run, results that do not match their meta.json, an unreachable
         dask scheduler, a missing optional dependency, a full disk, a read-only or forbidden
         path, ...). These are the errors flowsim raises as a flowsim.errors.UserError, and
         the OSErrors of the environment.
    70   an internal error (EX_SOFTWARE): any other exception is a bug in flowsim; one line
         names it and the file its traceback was saved to (in the temporary folder, $TMPDIR)
    130  interrupted by Ctrl-C or SIGTERM; `flowsim run` keeps its finished chunks (add
         --resume to the same command to continue)

`flowsim run` checks the experiment file, the output folder and the scheduler before it
writes anything, so a start that fails leaves nothing behind; while it runs it holds a lock
on the output folder (its pid and host in OUT/.lock.owner).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import signal
import sys
import tempfile
import threading
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from flowsim.errors import UserError

DESCRIPTION = (
    "Measure what preference-optimisation losses do under gradient flow: sweeps of flows from grids of "
    "starts, region tables, verdicts on a paper's claims, and figures."
)


#: Exit status of an internal error (a bug), as sysexits.h's EX_SOFTWARE.
EX_SOFTWARE = 70


def _die(msg: str) -> int:
    print(f"flowsim: error: {msg}", file=sys.stderr)
    return 2


def os_error_message(exc: OSError, command: str = "") -> str:
    """One line for an OSError of the environment: what, where, and what to do."""
    where = str(exc.filename) if exc.filename is not None else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        then = "run again with --resume" if command == "run" else "run again"
        return f"disk full{f' (writing {where})' if where else ''}: free space and {then}"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"cannot write to {where or 'the output'} (read-only or permission denied)"
    if exc.errno == errno.EEXIST:
        return f"cannot create the folder {where}: a file of that name is in the way; move it away and run again"
    if exc.errno == errno.ENOTDIR:
        return f"{where}: part of this path is a file, not a folder"
    if exc.errno == errno.EISDIR:
        return f"{where} is a folder, not a file"
    if exc.errno is None:
        return str(exc)
    return f"{where + ': ' if where else ''}{exc.strerror or exc}"


def cmd_run(args: argparse.Namespace) -> int:
    from flowsim.app.run import failures, run

    if args.scheduler and args.backend not in (None, "dask"):
        raise UserError(f"--scheduler is for the dask backend; it cannot be used with --backend {args.backend}")
    backend = "dask" if args.scheduler else args.backend
    from flowsim.experiment.parallel import usable_cpus  # the count -1 means, so the warning agrees with it

    if args.n_jobs > usable_cpus():
        print(f"flowsim: warning: --n-jobs {args.n_jobs} is more than the {usable_cpus()} cores here", file=sys.stderr)
    exp, out, meta = run(
        args.experiment,
        args.out,
        n_jobs=args.n_jobs,
        resume=args.resume,
        progress=not args.quiet,
        backend=backend,
        scheduler=args.scheduler,
        scheduler_timeout=args.scheduler_timeout,
        chunk_size=args.chunk_size,
    )
    counts = ", ".join(f"{k} {v}" for k, v in meta["counts_by_status"].items())
    rate = meta["rows"] / meta["wall_time_s"] if meta["wall_time_s"] else float("inf")
    print(f"{exp.name}: {meta['rows']} flows in {meta['wall_time_s']:.1f} s ({rate:,.0f}/s) -> {out}/flows.csv")
    print(f"  by status: {counts}")
    if meta.get("starts_left_out"):
        print(f"  left out {meta['starts_left_out']} grid points with p1 + p2 >= 1 (the model normalises)")
    for line in failures(out, meta):  # failed rows are loud: how many where, and the first one's message
        print(f"flowsim: {line}", file=sys.stderr)
    return 1 if meta["counts_by_status"].get("failed") else 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from flowsim.app.analyze import analyze

    for path in analyze(args.results, progress=not args.quiet):
        print(f"wrote {path}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from flowsim.app.plot import plot

    paths = plot(args.results, args.format, progress=not args.quiet, every=args.all)
    print(f"wrote {len(paths)} figures to {paths[0].parent if paths else args.results}")
    return 0


def cmd_field(args: argparse.Namespace) -> int:
    from flowsim.plotting import plot_field

    out = plot_field(beta=args.beta, ref_w=args.ref_w, ref_l=args.ref_l, out=Path(args.out), log_scale=not args.linear)
    print(f"wrote {out}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from flowsim.app.reproduce import reproduce

    out = Path(args.results) if args.update else Path(args.out) if args.out else None
    reproduce(
        Path(args.experiments),
        Path(args.results),
        out=out,
        n_jobs=args.n_jobs,
        progress=not args.quiet,
        allow_dirty=args.allow_dirty,
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from flowsim.app.bench import main as bench_main

    return bench_main(args.bench_args)


def cmd_explore(args: argparse.Namespace) -> int:
    try:
        import bokeh  # noqa: F401 - the page's server, an optional extra
    except ModuleNotFoundError:
        return _die("flowsim explore needs bokeh: pip install -e '.[explore]' (or '.[test]')")
    from flowsim.app.explore import explore

    explore(args.results, port=args.port)
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from flowsim.app.trace import trace

    paths = trace(args.run, out=args.out, beta=args.beta)
    print(f"wrote {len(paths)} files to {paths[0].parent if paths else args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from flowsim import __version__

    p = argparse.ArgumentParser(prog="flowsim", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"flowsim {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _add_run(sub)
    a = sub.add_parser("analyze", help="region tables and claim verdicts for a results folder")
    a.add_argument("results", help="a results folder holding flows.csv (and meta.json), or its flows.csv")
    a.add_argument("--quiet", action="store_true", help="no progress on stderr")
    a.set_defaults(func=cmd_analyze)
    pl = sub.add_parser("plot", help="heatmaps over the starts, facets, basins and paths")
    pl.add_argument("results", help="a results folder holding flows.csv (and meta.json), or its flows.csv")
    pl.add_argument("--format", choices=["png", "svg", "pdf"], default="png", help="figure file format (default png)")
    pl.add_argument(
        "--all",
        action="store_true",
        help="also a file per parameter combination (heatmaps, basins, paths); by default those only for "
        "a single combination, and for several the facets, paths_all and the loss comparison",
    )
    pl.add_argument("--quiet", action="store_true", help="no progress on stderr")
    pl.set_defaults(func=cmd_plot)
    _add_field(sub)
    r = sub.add_parser(
        "reproduce",
        help="run, analyse and plot every shipped experiment into a scratch folder and "
        "compare with results/ (--update: replace results/)",
    )
    r.add_argument("--experiments", default="experiments", help="folder of experiment files (default experiments)")
    r.add_argument("--results", default="results", help="the committed results to compare with (default results)")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--out", help="where to write (default runs/reproduce; the one before is kept in its .previous)")
    where.add_argument(
        "--update",
        action="store_true",
        help="write into --results, replacing the committed results (needs a clean tree)",
    )
    r.add_argument("--n-jobs", type=int, default=-1, help="parallel workers (default -1: all cores)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument(
        "--allow-dirty",
        action="store_true",
        help="with --update: publish from a tree with changes (results name a '-dirty' commit)",
    )
    r.set_defaults(func=cmd_reproduce)
    e = sub.add_parser("explore", help="a run folder's phase plane in the browser: click a start, see its path")
    e.add_argument(
        "results",
        nargs="?",
        default="results/paper",
        help="a results folder holding flows.csv (and meta.json), or its flows.csv (default results/paper)",
    )
    e.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: a free one, printed)")
    e.set_defaults(func=cmd_explore)
    t = sub.add_parser("trace", help="a TRL DPO run on the paper's plane, beside the idealised flows from its starts")
    t.add_argument(
        "run",
        help="a folder written by flowsim.integrations.trl.trace(...), or a TRL trainer_state.json "
        "(or a folder holding one: its batch-mean path)",
    )
    t.add_argument("--out", help="output folder (default RUN/flowsim, or flowsim/ beside trainer_state.json)")
    t.add_argument(
        "--beta",
        type=float,
        default=None,
        help="DPO's beta: checked against a trace's; for a trainer_state.json, default 0.1 (TRL's)",
    )
    t.set_defaults(func=cmd_trace)
    b = sub.add_parser("bench", help="the performance benchmark (flowsim bench --help for its options)", add_help=False)
    b.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of the benchmark")
    b.set_defaults(func=cmd_bench)
    return p


def _add_run(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="run an experiment sweep into a results folder")
    r.add_argument("experiment", help="experiment file (TOML), e.g. experiments/paper.toml")
    r.add_argument("--out", help="output folder (default: runs/<name>)")
    r.add_argument("--n-jobs", type=int, default=-1, help="parallel workers (default -1: all cores)")
    r.add_argument("--chunk-size", type=int, default=None, help="flows per task (default: automatic)")
    r.add_argument("--resume", action="store_true", help="continue an interrupted sweep in --out")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument(
        "--backend",
        choices=["fork", "loky", "dask"],
        default=None,
        help="where chunks run: fork (default on Linux: workers forked from this process, no re-imports), "
        "loky (fresh joblib processes; default elsewhere) or dask (a cluster, with --scheduler)",
    )
    r.add_argument("--scheduler", help="dask scheduler address, e.g. tcp://host:8786 (implies --backend dask)")
    r.add_argument(
        "--scheduler-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the dask scheduler before giving up (default 10)",
    )
    r.set_defaults(func=cmd_run)


def _add_field(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("field", help="the paper's Figure 1 redrawn: loss surface and gradient field")
    f.add_argument("--beta", type=float, default=0.1, help="DPO's beta (default 0.1)")
    f.add_argument("--ref-w", type=float, default=1.0, help="pi_ref(y_w|x) (default 1: no reference)")
    f.add_argument("--ref-l", type=float, default=1.0, help="pi_ref(y_l|x) (default 1: no reference)")
    f.add_argument("--out", default="figure1.png", help="output file (format from its suffix)")
    f.add_argument("--linear", action="store_true", help="arrow length proportional to |grad L| (the paper's way)")
    f.set_defaults(func=cmd_field)


_INTERRUPTED = {
    "run": "finished chunks are kept: add --resume to the same command to continue",
    "reproduce": "nothing was published; the output folder is as it was",
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the same clean-up, the same message, exit 130."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM raises :class:`Terminated` in the main thread for the duration."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _warnings_as_lines():
    """flowsim's own warnings (e.g. results read unchecked) as one "flowsim: warning:" line each."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if category.__module__.startswith("flowsim"):
                print(f"flowsim: warning: {message}", file=sys.stderr)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command; map its failures to the exit statuses of the module docstring."""
    command = getattr(args, "command", "")
    try:
        with _terminate_as_interrupt(), _warnings_as_lines():
            return args.func(args)
    except KeyboardInterrupt as exc:
        what = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"flowsim: {what}; {_INTERRUPTED.get(command, 'nothing was written')}", file=sys.stderr)
        return 130
    except UserError as exc:  # bad input, a missing optional dependency, a folder in use, ...
        return _die(str(exc))
    except OSError as exc:  # the environment: a full disk, a read-only folder, a file in the way, ...
        return _die(os_error_message(exc, command))
    except Exception as exc:  # noqa: BLE001 - anything else is a bug: say so, and keep the traceback
        return internal_error(exc, args)


def internal_error(exc: BaseException, args: argparse.Namespace | None = None) -> int:
    """Report a bug in one line naming the exception and the file its traceback is saved to; EX_SOFTWARE.

    The traceback goes to a file rather than the terminal so that the one line is not lost
    under it; if the file cannot be written, the traceback is printed instead.
    """
    text = "".join(traceback.format_exception(exc))
    first = (str(exc).strip().splitlines() or [""])[0]
    what = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    try:
        with tempfile.NamedTemporaryFile("w", prefix="flowsim-traceback-", suffix=".txt", delete=False) as fh:
            options = {k: v for k, v in vars(args or argparse.Namespace()).items() if k != "func"}
            fh.write(f"flowsim {_version()}, python {sys.version.split()[0]}\noptions {options}\n\n")
            fh.write(text)
        where = f"traceback saved to {fh.name}"
    except OSError as err:  # nowhere to save it: print it, so that it is not lost
        print(text, end="", file=sys.stderr)
        where = f"traceback above (it could not be saved: {err.strerror or err})"
    print(
        f"flowsim: internal error ({what}); {where}; this is a bug in flowsim, not a problem with your input: "
        f"please report it with the traceback (exit status {EX_SOFTWARE})",
        file=sys.stderr,
    )
    return EX_SOFTWARE


def _version() -> str:
    from flowsim import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # the benchmark parses its own options (--quick, --out, --repeats)
        from flowsim.app.bench import main as bench_main

        # its failures map to exit statuses as every command's do
        return run_command(argparse.Namespace(command="bench", func=lambda args: bench_main(argv[1:])))
    return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
