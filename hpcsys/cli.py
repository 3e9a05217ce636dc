"""The ``hpcsys`` command line: check, run, reduce, report (and fit).

::

    hpcsys check CONFIG [--set section.key=value ...] [--ranks N]
    hpcsys run CONFIG [--set ...] [--resume] [--no-reduce]   # serially, or under mpiexec / srun
    hpcsys reduce RUN_DIR
    hpcsys report RUN.h5|RUN_DIR [--format text|csv|latex|markdown]
    hpcsys fit ...                                     # a user's own maps (hpcsys.userfit)

Bad input (a config value, a run directory, a results file) prints one line
``hpcsys <command>: <what is wrong>`` on standard error and exits with status
2; a failing task exits with status 1 (under MPI the whole job is aborted).
Under a launcher only rank 0 prints errors that every rank sees alike.

JAX is imported only after the per-rank threads, core binding and GPU have
been set (:func:`hpcsys.parallel.configure_rank`), and switched to the run's
``run.precision`` there.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from hpcsys._version import __version__
from hpcsys.config import ConfigError, load_config

__all__ = ["build_parser", "main"]

EXIT_BAD_INPUT = 2
EXIT_TASK_FAILED = 1


def _launcher_rank() -> int:
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                pass
    return 0


def _fail(command: str, msg: str, code: int = EXIT_BAD_INPUT, *, all_ranks: bool = False) -> int:
    if all_ranks or _launcher_rank() == 0:
        sys.stderr.write(f"hpcsys {command}: {msg}\n")
        sys.stderr.flush()
    return code


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML run configuration")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override one config value (repeatable)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _cmd_check(args: argparse.Namespace) -> int:
    from hpcsys.parallel.estimate import estimate_cost
    from hpcsys.parallel.progress import format_duration

    try:
        cfg = load_config(args.config, args.overrides)
        est = estimate_cost(cfg, n_ranks=args.ranks)
    except ConfigError as exc:
        return _fail("check", str(exc))
    r = cfg.run
    hours = est.core_hours
    print(f"config: {cfg.source} (valid)")
    print(f"tasks: {len(r.scenarios)} scenarios x {r.n_realisations} realisations = "
          f"{est.n_tasks}")
    print(f"sky: NSIDE {cfg.sky.nside}, footprint {cfg.sky.footprint}, {est.n_pixels} pixels; "
          f"{cfg.n_templates} templates; methods {', '.join(cfg.methods.names)}")
    print(f"estimated time: {est.seconds_per_task:.3g} s per task on one core, "
          f"{hours:.3g} core-hours in all")
    top = sorted(est.stage_seconds.items(), key=lambda kv: -kv[1])
    print("  per task: " + ", ".join(f"{k} {v:.2g} s" for k, v in top))
    print(f"prepare (once per run, cached in the run directory): {est.prepare_seconds:.3g} "
          f"CPU s ({est.prepare_treecorr_runs} TreeCorr runs of the template xi_ij, shared by "
          f"the ranks)")
    print(f"wall time on {est.n_ranks} rank(s) of one core: {format_duration(est.wall_seconds)} "
          f"(efficiency {est.efficiency:.2f})")
    print(f"memory per rank: {est.memory_per_rank_mb / 1024:.2f} GiB")
    print(f"output: {est.output_dir} (per-task files ~{est.task_file_mb:.2g} MB each, "
          f"results.h5 ~{est.results_file_mb:.2g} MB)")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from hpcsys.parallel.runner import RunError, TaskFailedError, run_tasks

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        return _fail("run", str(exc))
    try:
        summary = run_tasks(cfg, resume=args.resume, reduce=not args.no_reduce)
    except (ConfigError, RunError) as exc:
        return _fail("run", str(exc))
    except TaskFailedError as exc:
        return _fail("run", str(exc), EXIT_TASK_FAILED, all_ranks=True)
    if _launcher_rank() == 0:
        where = summary.results_path or f"{summary.run_dir}/tasks (reduce with: hpcsys reduce " \
                                         f"{summary.run_dir})"
        print(f"[hpcsys] {summary.n_tasks} tasks ({summary.n_skipped} resumed) on "
              f"{summary.n_ranks} rank(s) in {summary.seconds:.1f} s -> {where}")
    return 0


def _cmd_reduce(args: argparse.Namespace) -> int:
    from hpcsys.parallel.runner import RunError, reduce_run

    try:
        path = reduce_run(args.run_dir)
    except (ConfigError, RunError, OSError) as exc:
        return _fail("reduce", str(exc))
    print(f"[hpcsys] reduced -> {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from hpcsys.io import ResultsFormatError, open_results, render_report

    path = Path(args.results)
    if path.is_dir():
        path = path / "results.h5"
    try:
        with open_results(path) as res:
            t2, t3, rec = res.table2(), res.table3(), res.recovery()
            if t2 is None or t3 is None or rec is None:
                import yaml

                from hpcsys.config import parse_config
                from hpcsys.reduction import compute_tables

                alpha = parse_config(yaml.safe_load(res.config_text)).analysis.alpha
                t2, t3, rec = compute_tables(res, alpha)
        sys.stdout.write(render_report(t2, t3, rec, args.format))
    except (ResultsFormatError, ConfigError) as exc:
        return _fail("report", str(exc))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands check, run, reduce, report, and fit when available)."""
    parser = argparse.ArgumentParser(
        prog="hpcsys",
        description="MPI-parallel validation of galaxy-clustering systematics mitigation "
                    "(Berlfein et al. 2024).")
    parser.add_argument("--version", action="version", version=f"hpcsys {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("check", help="validate a config and estimate its cost (runs nothing)")
    _add_config_args(p)
    p.add_argument("--ranks", type=_positive_int, default=1, metavar="N",
                   help="ranks (one core each) of the wall-time estimate (default 1)")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("run", help="run all tasks (serially, or under mpiexec/srun), then reduce")
    _add_config_args(p)
    p.add_argument("--resume", action="store_true",
                   help="skip finished tasks of the same config in the run directory")
    p.add_argument("--no-reduce", action="store_true",
                   help="leave the task files for a separate 'hpcsys reduce' (e.g. a chained job)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("reduce", help="aggregate a run directory's task files into results.h5")
    p.add_argument("run_dir", help="run directory (run.output_dir)")
    p.set_defaults(func=_cmd_reduce)

    from hpcsys.io.tables import FORMATS

    p = sub.add_parser("report", help="print Table 2, Table 3 and the recovery summary")
    p.add_argument("results", help="results.h5 (or its run directory)")
    p.add_argument("--format", choices=FORMATS, default="text")
    p.set_defaults(func=_cmd_report)

    if importlib.util.find_spec("hpcsys.userfit") is not None:
        importlib.import_module("hpcsys.userfit").register_cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hpcsys`` script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
