"""The ``hpcsys`` command line: check, run, reduce, report (and fit).

::

    hpcsys check CONFIG [--set section.key=value ...] [--ranks N]
    hpcsys run CONFIG [--set ...] [--resume] [--no-reduce]   # serially, or under mpiexec / srun
    hpcsys reduce RUN_DIR
    hpcsys report RUN.h5|RUN_DIR [--format text|csv|latex|markdown]
    hpcsys fit MAP -t T ... --out OUT.h5                # a user's own maps (hpcsys.userfit)

Bad input (a config value, a run directory, a results file, a full disk)
prints one line ``hpcsys <command>: <what is wrong>`` on standard error and
exits with status 2; a failing task exits with status 1 (under MPI the whole
job is aborted); Ctrl-C prints ``hpcsys <command>: interrupted`` and exits
with status 130. Under a launcher only rank 0 prints errors that every rank
sees alike. The faults handled and how are listed in the documentation's
reliability page.

JAX is imported only after the per-rank threads, core binding and GPU have
been set (:func:`hpcsys.parallel.configure_rank`), and switched to the run's
``run.precision`` there.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hpcsys._version import __version__
from hpcsys.config import ConfigError, load_config

if TYPE_CHECKING:
    from hpcsys.config import MethodsSection
    from hpcsys.userfit import FitResult

__all__ = ["build_parser", "convergence_warnings", "format_fit_summary", "main"]

EXIT_BAD_INPUT = 2
EXIT_TASK_FAILED = 1
EXIT_INTERRUPTED = 130


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
    from hpcsys.io.atomic import DiskFullError
    from hpcsys.parallel.estimate import estimate_cost
    from hpcsys.parallel.progress import format_duration
    from hpcsys.rundir import check_run_space

    try:
        cfg = load_config(args.config, args.overrides)
        est = estimate_cost(cfg, n_ranks=args.ranks)
        size = check_run_space(cfg, cfg.output_dir, est.n_tasks, est.n_pixels)
    except (ConfigError, DiskFullError) as exc:
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
    if est.calibration_seconds:
        print(f"calibration set of Table 2: {cfg.analysis.calibration_realisations} null mocks, "
              f"{est.calibration_seconds / 3600:.3g} core-hours (model comparisons only)")
    print(f"prepare (once per run, cached in the run directory): {est.prepare_seconds:.3g} "
          f"CPU s ({est.prepare_treecorr_runs} TreeCorr runs of the template xi_ij, shared by "
          f"the ranks)")
    print(f"wall time on {est.n_ranks} rank(s) of one core: {format_duration(est.wall_seconds)} "
          f"(efficiency {est.efficiency:.2f})")
    print(f"memory per rank: {est.memory_per_rank_mb / 1024:.2f} GiB")
    print(f"output: {est.output_dir} (per-task files ~{est.task_file_mb:.2g} MB each, "
          f"results.h5 ~{est.results_file_mb:.2g} MB)")
    print(f"disk: ~{size.total_bytes / 1e6:.3g} MB needed, "
          f"{_free_mb(cfg.output_dir):.3g} MB free")
    return 0


def _free_mb(path: Path) -> float:
    import shutil

    p = Path(path).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free / 1e6


def _cmd_run(args: argparse.Namespace) -> int:
    from hpcsys.io.atomic import DiskFullError
    from hpcsys.parallel.runner import RunError, TaskFailedError, run_tasks

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        return _fail("run", str(exc))
    try:
        summary = run_tasks(cfg, resume=args.resume, reduce=not args.no_reduce)
    except (ConfigError, RunError, DiskFullError) as exc:
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
    from hpcsys.reduction import reduce_run
    from hpcsys.rundir import RunError

    try:
        path = reduce_run(args.run_dir)
    except (ConfigError, RunError, OSError) as exc:  # OSError includes DiskFullError
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
        from hpcsys.io.identify import describe_file

        what = describe_file(path)
        if what in ("missing", "an hpcsys results file"):
            return _fail("report", str(exc))
        return _fail("report", f"{path}: {what}; expected an hpcsys results file (results.h5 "
                               "written by hpcsys run or hpcsys reduce, or its run directory)")
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

    _register_fit(sub)
    return parser


def _register_fit(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``fit`` sub-command (:mod:`hpcsys.userfit`); its ``func`` is :func:`_cmd_fit`."""
    from hpcsys.config import METHOD_NAMES, WEIGHT_MAP_METHODS

    p = subparsers.add_parser(
        "fit",
        help="run the methods, MLE fits, Wald tests and LRTs on your own HEALPix maps",
        description=(
            "Fit additive/multiplicative systematics templates to a HEALPix overdensity map "
            "(or a counts map with --counts and --mask) with the six methods of Berlfein+24, "
            "maximum-likelihood fits of every model and likelihood-ratio tests. Maps are FITS "
            "files as written by healpy.write_map (RING or NESTED; NESTED is reordered). "
            "Printed errors: '±' is the honest error (for OLS and the MLE fits the harmonic "
            "sandwich covariance, with the residual spectra measured on your map, valid on a "
            "spatially correlated sky; band methods.sandwich_lmax), '[...]' the error that "
            "assumes independent pixels (inverse Hessian / s^2 (T T^T)^-1). Tests: 'p' is the "
            "Wald p-value of the alternative's extra coefficients with the sandwich covariance "
            "(the honest one), 'p_wilks' the Wilks chi-square p-value of the likelihood ratio "
            "lambda (assumes independent pixels: far too small on maps with large-scale "
            "structure). The output file stores both under their own names (a_err / "
            "a_err_indep, pvalue / pvalue_indep)."
        ),
    )
    p.add_argument("map", metavar="MAP", help="overdensity (or counts) HEALPix FITS map")
    p.add_argument(
        "--templates", "-t", nargs="+", required=True, metavar="T",
        help="template FITS maps (a multi-column file gives one template per column)",
    )
    p.add_argument("--mask", metavar="MASK", help="footprint mask FITS map (> 0 is observed)")
    p.add_argument(
        "--counts", action="store_true",
        help="MAP holds galaxy counts (requires --mask); delta = N/mean(N) - 1",
    )
    p.add_argument(
        "--methods", nargs="+", metavar="NAME",
        help=f"methods to run (default: all; {', '.join(METHOD_NAMES)})",
    )
    p.add_argument(
        "--likelihoods", nargs="+", metavar="NAME",
        help="likelihoods of the MLE fits and LRTs (default: gaussian skewnormal)",
    )
    p.add_argument("--out", "-o", required=True, metavar="OUT.h5", help="output HDF5 file")
    p.add_argument("--weights-fits", metavar="W.fits", help="also write a FITS weight map")
    p.add_argument(
        "--weights-method", default="ISD-1", metavar="NAME",
        help=f"method whose weights go to --weights-fits ({', '.join(WEIGHT_MAP_METHODS)}; "
        "default ISD-1)",
    )
    p.add_argument("--seed", type=int, default=0, help="master seed of the method streams")
    p.add_argument("--config", metavar="YAML", help="take the methods: section from this config")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="methods.KEY=VALUE",
        help="override a methods.* setting (repeatable)",
    )
    p.set_defaults(func=_cmd_fit)
    return p


def _fit_settings_from_args(args: argparse.Namespace) -> MethodsSection:
    from hpcsys.config import Config, apply_overrides

    for item in args.overrides:
        if not item.strip().startswith("methods."):
            raise ConfigError(f"--set {item}: only methods.* settings apply to hpcsys fit")
    if args.config:
        cfg = load_config(args.config, args.overrides, mock_run=False)
    else:
        cfg = apply_overrides(Config(), args.overrides, mock_run=False)
    return cfg.methods


def _check_output(path: str, option: str) -> None:
    """Refuse an output path that cannot be written, before any computation.

    The directory must exist and accept a new file (probed by creating and
    removing this process's temporary name, so ``/proc``, read-only and full
    file systems are refused now, not after the fit); the path itself must not
    be a directory or a special file.
    """
    from hpcsys.io.atomic import temp_path

    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{option} {path}: is a directory; give a file name")
    if p.exists() and not p.is_file():
        raise ConfigError(f"{option} {path}: not a regular file")
    parent = p.resolve().parent
    if not parent.is_dir():
        raise ConfigError(f"{option} {path}: directory {parent} does not exist")
    probe = temp_path(p)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"\0")
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write in {parent} "
                          f"({exc.strerror or exc})") from None
    finally:
        probe.unlink(missing_ok=True)


def _write_fit_outputs(result: FitResult, args: argparse.Namespace,
                       weighting_methods: Sequence[str]) -> None:
    """Write --weights-fits, then --out; an error names its option, and on a failed --out
    the weight map just written is removed (no half of a result is left)."""
    from hpcsys.io.atomic import DiskFullError
    from hpcsys.io.fitfile import write_fit_result, write_weight_map

    if args.weights_fits:
        try:
            write_weight_map(result, args.weights_method, args.weights_fits,
                             weighting_methods=weighting_methods)
        except DiskFullError as exc:
            raise ConfigError(f"--weights-fits: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"--weights-fits {args.weights_fits}: cannot write "
                              f"({exc.strerror or exc})") from None
    try:
        write_fit_result(result, args.out)
    except OSError as exc:
        if args.weights_fits:
            Path(args.weights_fits).unlink(missing_ok=True)
        if isinstance(exc, DiskFullError):
            raise ConfigError(f"--out: {exc}") from None
        raise ConfigError(f"--out {args.out}: cannot write ({exc.strerror or exc})") from None


def _cmd_fit(args: argparse.Namespace) -> int:
    """Handle ``hpcsys fit``: returns the exit code (0 ok, 2 bad input)."""
    from hpcsys.config import WEIGHT_MAP_METHODS
    from hpcsys.io.fitfile import FitFileError
    from hpcsys.io.maps import MapInputError
    from hpcsys.methods import MethodInputError
    from hpcsys.userfit import _resolve_settings, fit_files

    try:
        settings = _fit_settings_from_args(args)
        settings = _resolve_settings(settings, args.methods, args.likelihoods)
        _check_output(args.out, "--out")
        if args.weights_fits:
            _check_output(args.weights_fits, "--weights-fits")
            if Path(args.weights_fits).resolve() == Path(args.out).resolve():
                raise ConfigError(f"--weights-fits {args.weights_fits}: the same file as --out")
            if args.weights_method not in WEIGHT_MAP_METHODS:
                raise ConfigError(
                    f"--weights-method {args.weights_method}: not a weighting method; choose "
                    f"from {', '.join(WEIGHT_MAP_METHODS)}"
                )
            if args.weights_method not in settings.names:
                raise ConfigError(
                    f"--weights-method {args.weights_method}: not among the methods to run "
                    f"({', '.join(settings.names)})"
                )
        result = fit_files(
            args.map, args.templates, mask_path=args.mask, counts=args.counts,
            settings=settings, seed=args.seed,
        )
        for note in result.map.notes:
            print(f"hpcsys fit: note: {note}", file=sys.stderr)
        for warning in convergence_warnings(result):
            print(f"hpcsys fit: warning: {warning}", file=sys.stderr)
        _write_fit_outputs(result, args, WEIGHT_MAP_METHODS)
    except (MapInputError, ConfigError, MethodInputError, FitFileError) as exc:
        print(f"hpcsys fit: {exc}", file=sys.stderr)
        return 2
    print(format_fit_summary(result))
    return 0


def convergence_warnings(result: FitResult) -> list[str]:
    """One line per method or MLE fit that did not converge or ran into the pole."""
    out = []
    for r in result.methods:
        d = r.diagnostics
        if not d.converged or d.hit_pole:
            what = "ran into the pole 1 + b.t_p = 0" if d.hit_pole else "did not converge"
            out.append(f"method {r.name} {what}" + (f" ({d.message})" if d.message else ""))
    for f in result.mle:
        if not f.converged or f.hit_pole:
            what = "ran into the pole 1 + b.t_p = 0" if f.hit_pole else "did not converge"
            out.append(f"MLE fit {f.model}/{f.likelihood} {what} ({f.message}); its LRT rows "
                       "are flagged")
    return out


def _chain_lines(result: FitResult) -> list[str]:
    """Length, stop reason and convergence of each MCMC chain (empty without MCMC methods)."""
    out = []
    for r in result.methods:
        d = r.diagnostics
        if not d.stop_reason:
            continue
        out.append(f"{r.name}: {d.stop_reason}; min ESS "
                   f"{d.effective_samples:.0f}, max split-R-hat {d.rhat_max:.4f} "
                   f"({'converged' if d.converged else 'not converged'}); a, b = posterior mean, "
                   "errors = sandwich at the posterior maximum")
    return ["", *out] if out else []


def format_fit_summary(result: FitResult) -> str:
    """A short plain-text report of a :class:`FitResult`.

    Coefficients with their honest errors (``a_err``: the harmonic sandwich for
    OLS and the MLE fits, each method's own otherwise) and, where a method has
    them, the independent-pixel errors in brackets; then the tests of every
    nested pair: the Wald p-value with the sandwich covariance (``p``, the
    honest one) beside the likelihood ratio lambda and its Wilks p-value
    (``p_wilks``, assumes independent pixels).
    """
    m = result.map
    lines = [
        f"NSIDE {m.nside}: {m.n_pixels} footprint pixels, K = {len(m.template_names)} templates"
        + (f" ({len(m.dropped)} dropped: {', '.join(m.dropped)})" if m.dropped else ""),
        "",
        "errors: ± honest (sandwich for OLS and the MLE fits, on a correlated sky); "
        "[independent pixels]",
        f"{'method':<22}{'model':<16}{'template':<18}{'a':>34}{'b':>34}",
    ]

    def cell(v: float, e: float, ei: float) -> str:
        return f"{v:+.4g} ± {e:.2g}" + (f" [{ei:.2g}]" if math.isfinite(float(ei)) else "")

    rows = [(r.name, r.model, r.a, r.b, r.a_err, r.b_err, r.a_err_indep, r.b_err_indep)
            for r in result.methods]
    rows += [(f"MLE {f.likelihood[:5]}", f.model, f.a, f.b, f.a_err, f.b_err,
              f.a_err_indep, f.b_err_indep) for f in result.mle if f.model != "null"]
    for name, model, a, b, ae, be, aei, bei in rows:
        for k, tname in enumerate(m.template_names):
            lines.append(f"{name if k == 0 else '':<22}{model if k == 0 else '':<16}"
                         f"{tname[:17]:<18}{cell(a[k], ae[k], aei[k]):>34}"
                         f"{cell(b[k], be[k], bei[k]):>34}")
    lines += _chain_lines(result)
    t = result.lrt
    lines += ["", "tests of the nested models: Wald with the sandwich covariance (p, honest); "
              "likelihood ratio lambda (Berlfein+24 Eq. 19) with its Wilks p-value "
              "(p_wilks, assumes independent pixels)",
              f"{'null':<16}{'alternative':<16}{'likelihood':<12}{'dof':>4}{'W':>12}"
              f"{'p':>11}{'lambda':>12}{'p_wilks':>11}"]
    for i in range(len(t.null_model)):
        flag = "" if t.converged[i] else "  (fit not converged)"
        lines.append(f"{t.null_model[i]:<16}{t.alt_model[i]:<16}{t.likelihood[i]:<12}"
                     f"{t.wald_dof[i]:>4}{t.wald_statistic[i]:>12.4g}{t.pvalue[i]:>11.3g}"
                     f"{t.statistic[i]:>12.7g}{t.pvalue_indep[i]:>11.3g}{flag}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hpcsys`` script; returns the exit status."""
    command = ""
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback, the shell's status 128 + SIGINT
        msg = f"hpcsys {command}: interrupted" if command else "hpcsys: interrupted"
        sys.stderr.write(msg + "\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
