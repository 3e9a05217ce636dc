"""Reduction over realisations: Table 2, Table 3 and parameter recovery (Berlfein+24 Eqs. 19-26; docs/science/tables.rst).

Inputs are the per-scenario arrays of an aggregated results file
(:class:`hpcsys.io.ScenarioData`); outputs are the typed tables of
:mod:`hpcsys.io.tables`. Which error each table uses:

* Table 2 (:func:`table2`): rejection fractions of the likelihood-ratio tests
  (Berlfein+24 Eq. 19) with binomial errors, both with Wilks' chi-square
  p-values (assumes independent pixels) and mock-calibrated against the
  run's calibration set (:mod:`hpcsys.calibration`: null mocks of their own
  random streams, never the evaluated realisations;
  ``p = (1 + #{lambda_cal >= lambda}) / (1 + M)``), the calibrated alternative
  of docs/correlated_pixels.rst. Each cell is a size where the scenario's
  model is nested in the test's null model (:func:`null_true`), else a power.
  With M calibration mocks no p-value is below 1/(M + 1): the calibrated test
  can only reject at level alpha when M >= 1/alpha - 1 (19 at alpha = 0.05).
  Beside Wilks, the Wald test with the honest (harmonic sandwich)
  covariance, which needs no mocks.
* Table 3 (:func:`table3`): amplitude bias of w(theta) from a GLS fit
  (Berlfein+24 Eqs. 25-26) with the mock-to-mock covariance of ``w_true``
  (Hartlap-corrected inverse; Ledoit-Wolf shrinkage when N <= B + 2, where
  that inverse does not exist, :func:`w_covariance_inverse`): errors from the
  mock ensemble, not the likelihood.
* Recovery (:func:`recovery_table`): bias in units of the mock-to-mock
  scatter / sqrt(N), the methods' errors next to that scatter, pulls and
  68 % / 95 % coverage of the methods' errors (honest, sandwich, for OLS)
  and of the independent-pixel errors (``*_indep``).

The statistics come from :mod:`hpcsys.core.stats` (pure JAX), evaluated here
in float64 whatever the run's precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from hpcsys.calibration import calibration_source
from hpcsys.config import REMEASURED_METHODS
from hpcsys.core.models import MODELS
from hpcsys.core.stats import (
    amplitude_fit,
    binomial_fraction,
    empirical_pvalue,
    hartlap_inverse,
    sample_covariance,
)
from hpcsys.io import (
    CalibrationData,
    RecoveryTable,
    ResultsFile,
    ScenarioData,
    Table2,
    Table3,
)

__all__ = ["compute_tables", "null_true", "recovery_table", "reduce_run", "table2", "table3",
           "w_covariance_inverse"]

_Z95 = 1.959963984540054


def _as_f64(x: object) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def null_true(scenario: str, pair: str) -> bool:
    """Whether the scenario's contamination model is nested in the null model of ``pair``.

    Then the test's null hypothesis holds and its rejection fraction is a size;
    otherwise it is a power.
    """
    null = pair.split("/")[0]
    sa, sb = MODELS[scenario]
    na, nb = MODELS[null]
    return (na or not sa) and (nb or not sb)


def table2(data: Mapping[str, ScenarioData], lrt_pairs: Sequence[str],
           likelihoods: Sequence[str], alpha: float,
           calibration: CalibrationData | None = None) -> Table2:
    """Rejection fractions of the LRT null models (Berlfein+24 Table 2).

    Parameters
    ----------
    data : mapping of scenario name to ScenarioData
    lrt_pairs, likelihoods : sequence of str
        Labels of the ``lrt_pair`` and ``likelihood`` axes.
    alpha : float
        Test level.
    calibration : CalibrationData, optional
        The run's calibration set (:mod:`hpcsys.calibration`); absent or empty:
        the calibrated columns are ``nan``. Its scenario axis must contain
        every scenario of ``data``.

    Returns
    -------
    Table2
        Fractions over the realisations with a finite lambda; calibrated
        p-values ``(1 + #{lambda_cal >= lambda}) / (1 + M)`` over the finite
        calibration values of the same (scenario, test, likelihood) cell.
    """
    scen = tuple(data)
    S, Q, L = len(scen), len(lrt_pairs), len(likelihoods)
    frac_wilks, err_wilks, frac_cal, err_cal = (np.full((S, Q, L), np.nan) for _ in range(4))
    frac_wald, err_wald = np.full((S, Q, L), np.nan), np.full((S, Q, L), np.nan)
    crit = np.full((S, Q, L), np.nan)
    cal_wilks, cal_wilks_err = np.full((Q, L), np.nan), np.full((Q, L), np.nan)
    M = 0 if calibration is None else calibration.n_calibration
    if M:
        missing = [s for s in scen if s not in calibration.scenarios]
        if missing:
            raise ValueError(f"calibration set lacks scenario(s) {', '.join(missing)}")
    with jax.enable_x64(True):
        if M:
            for q, pair in enumerate(lrt_pairs):
                if pair.split("/")[0] != "null":
                    continue
                for li in range(L):
                    pv = calibration.null_pvalue[:, q, li]
                    pv = pv[np.isfinite(pv)]
                    if pv.size:
                        f, e = binomial_fraction(int(np.sum(pv < alpha)), pv.size)
                        cal_wilks[q, li], cal_wilks_err[q, li] = float(f), float(e)
        for s, name in enumerate(scen):
            lam, pval = data[name].lrt.statistic, data[name].lrt.pvalue
            cs = calibration.scenarios.index(name) if M else -1
            for q in range(Q):
                for li in range(L):
                    ok = np.isfinite(lam[:, q, li])
                    n = int(ok.sum())
                    lam0 = calibration.statistic[:, cs, q, li] if M else np.empty(0)
                    lam0 = lam0[np.isfinite(lam0)]
                    if lam0.size:
                        crit[s, q, li] = np.quantile(lam0, 1.0 - alpha)
                    if n == 0:
                        continue
                    k = int(np.sum(pval[ok, q, li] < alpha))
                    f, e = binomial_fraction(k, n)
                    frac_wilks[s, q, li], err_wilks[s, q, li] = float(f), float(e)
                    wp = data[name].lrt.wald_pvalue[:, q, li]
                    nw = int(np.isfinite(wp).sum())
                    if nw:
                        f, e = binomial_fraction(int(np.sum(wp[np.isfinite(wp)] < alpha)), nw)
                        frac_wald[s, q, li], err_wald[s, q, li] = float(f), float(e)
                    if lam0.size:
                        p_emp = _as_f64(empirical_pvalue(lam[ok, q, li], lam0))
                        f, e = binomial_fraction(int(np.sum(p_emp <= alpha)), n)
                        frac_cal[s, q, li], err_cal[s, q, li] = float(f), float(e)
    return Table2(
        scenarios=scen, lrt_pairs=tuple(lrt_pairs), likelihoods=tuple(likelihoods),
        n_realisations=np.array([data[s].n_realisations for s in scen], dtype=np.int64),
        alpha=float(alpha), n_calibration=int(M),
        critical_lambda=crit, fraction_wilks=frac_wilks, error_wilks=err_wilks,
        fraction_calibrated=frac_cal, error_calibrated=err_cal,
        fraction_wald=frac_wald, error_wald=err_wald,
        calibration_source=tuple(calibration_source(p) for p in lrt_pairs),
        null_true=np.array([[null_true(s, p) for p in lrt_pairs] for s in scen],
                           dtype=bool).reshape(S, Q),
        calibration_wilks_fraction=cal_wilks, calibration_wilks_error=cal_wilks_err)


def _mean_err(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    err = float(np.std(x, ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")
    return float(np.mean(x)), err


def w_covariance_inverse(w_true: np.ndarray) -> tuple[np.ndarray, float, str]:
    """Inverse covariance of w(theta) across realisations that exists at this N.

    Parameters
    ----------
    w_true : ndarray, shape (N, B)

    Returns
    -------
    cinv : ndarray, shape (B, B)
        ``nan`` when N < 2.
    hartlap : float
        ``(N - B - 2) / (N - 1)`` when the Hartlap-corrected sample inverse is
        used, else ``nan``.
    note : str
        One line naming the covariance used and why.

    Notes
    -----
    For N > B + 2 the sample covariance with the Hartlap factor (Berlfein+24
    Eq. 24 style). For 2 <= N <= B + 2 that inverse does not exist (the Hartlap
    factor is <= 0 and the sample covariance is singular for N <= B): the
    Ledoit-Wolf shrinkage estimate (:class:`sklearn.covariance.LedoitWolf`,
    shrinkage towards a scaled identity, rescaled by N / (N - 1) to the
    unbiased normalisation) is positive definite when its estimated shrinkage
    is positive; where it is not (e.g. N = 2, the shrinkage estimate can vanish)
    the per-bin variances (diagonal covariance) are used. Neither inverse has a
    Hartlap-like correction, so sigma_A is then indicative.
    """
    wt = _as_f64(w_true)
    N, B = wt.shape
    if N > B + 2:
        h = (N - B - 2.0) / (N - 1.0)
        cinv = _as_f64(hartlap_inverse(sample_covariance(wt), N))
        return cinv, h, (f"sample covariance of w_true over N = {N} realisations, "
                         f"Hartlap factor {h:.3f}")
    if N < 2:
        return (np.full((B, B), np.nan), float("nan"),
                f"N = {N}: no covariance of w_true across realisations (needs N >= 2)")
    from sklearn.covariance import LedoitWolf

    why = f"N = {N} <= B + 2 = {B + 2}, the Hartlap-corrected sample inverse does not exist"
    lw = LedoitWolf().fit(wt)
    cov = lw.covariance_ * N / (N - 1.0)
    eig = np.linalg.eigvalsh(cov)
    if eig[0] > 1e-10 * eig[-1] > 0:
        return (np.linalg.inv(cov), float("nan"),
                f"Ledoit-Wolf shrinkage covariance of w_true (shrinkage "
                f"{lw.shrinkage_:.2f}): {why}")
    var = wt.var(axis=0, ddof=1)  # the estimated shrinkage vanished: cov has rank N - 1
    if np.all(var > 0):
        return (np.diag(1.0 / var), float("nan"),
                f"diagonal covariance of w_true (per-bin variances; the Ledoit-Wolf estimate "
                f"is singular at this N): {why}")
    return (np.full((B, B), np.nan), float("nan"),
            f"no covariance of w_true: a bin has zero variance over the N = {N} realisations")


def table3(data: Mapping[str, ScenarioData], methods: Sequence[str]) -> Table3:
    """Mean amplitude bias dA/sigma_A per scenario and estimator (Berlfein+24 Table 3).

    See :class:`hpcsys.io.tables.Table3` for the definition. The covariance of
    w comes from :func:`w_covariance_inverse` (Hartlap-corrected sample
    inverse for N > B + 2, Ledoit-Wolf shrinkage below); each scenario's
    ``covariance_note`` says which and why.
    """
    scen = tuple(data)
    est = ("uncorrected", *methods)
    S, E = len(scen), len(est)
    mean, err, mean_d, err_d, shift, err_shift = (np.full((S, E), np.nan) for _ in range(6))
    hartlap = np.full(S, np.nan)
    sigma_A = np.full(S, np.nan)
    notes = []
    B = 0
    with jax.enable_x64(True):
        for s, name in enumerate(scen):
            d = data[name]
            wt = _as_f64(d.w_true)
            B = wt.shape[1]
            cinv, hartlap[s], note = w_covariance_inverse(wt)
            notes.append(note)
            if not np.all(np.isfinite(cinv)):
                continue
            w_ref = wt.mean(axis=0)
            A_true, sigma = amplitude_fit(wt, w_ref, cinv)
            A_true, sigma_A[s] = _as_f64(A_true), float(_as_f64(sigma)[0])
            full = [_as_f64(d.w_obs)] + [_as_f64(d.w_corrected[:, m]) for m in range(len(methods))]
            diag = [_as_f64(d.w_obs)] + [_as_f64(d.w_corrected_diag[:, m]) for m in range(len(methods))]
            A_obs = _as_f64(amplitude_fit(full[0], w_ref, cinv).A)
            for e in range(E):
                for w, out_m, out_e in ((full[e], mean, err), (diag[e], mean_d, err_d)):
                    A = _as_f64(amplitude_fit(w, w_ref, cinv).A)
                    out_m[s, e], out_e[s, e] = _mean_err((A - A_true) / sigma_A[s])
                    if out_m is mean:
                        shift[s, e], err_shift[s, e] = _mean_err((A - A_obs) / sigma_A[s])
    return Table3(
        scenarios=scen, estimators=est,
        n_realisations=np.array([data[s].n_realisations for s in scen], dtype=np.int64),
        n_bins=int(B), hartlap_factor=hartlap, sigma_A=sigma_A, mean_dA_over_sigma=mean,
        error_dA_over_sigma=err, mean_dA_over_sigma_diag=mean_d, error_dA_over_sigma_diag=err_d,
        covariance_note=tuple(notes), mean_shift_over_sigma=shift,
        error_shift_over_sigma=err_shift)


def recovery_table(data: Mapping[str, ScenarioData], methods: Sequence[str],
                   n_templates: int) -> RecoveryTable:
    """Bias, scatter, likelihood errors, pulls and coverage per method and parameter.

    See :class:`hpcsys.io.tables.RecoveryTable`. Parameters a method's model
    does not estimate (e.g. ``b`` for an additive method) are ``nan``, and so
    are all parameters of the map-weighting methods (ISD,
    :data:`hpcsys.config.REMEASURED_METHODS`): their coefficients describe
    weights, not the (a, b) of Berlfein+24 Eqs. 11-13, so they are judged
    through w(theta) only (Table 3).
    """
    scen = tuple(data)
    K = n_templates
    params = tuple(f"a_{i}" for i in range(K)) + tuple(f"b_{i}" for i in range(K))
    S, M, P = len(scen), len(methods), 2 * K
    out = {k: np.full((S, M, P), np.nan) for k in (
        "bias", "scatter", "bias_over_error", "likelihood_error", "error_ratio", "pull_std",
        "coverage68", "coverage95", "coverage68_indep", "coverage95_indep",
        "coverage68_jackknife", "coverage95_jackknife")}
    w_only = tuple(m for m in methods if m in REMEASURED_METHODS)
    for s, name in enumerate(scen):
        d = data[name]
        N = d.n_realisations
        for m, meth in enumerate(methods):
            if meth in w_only:  # weights, not (a, b): judged through w (Table 3) only
                continue
            ma = d.methods[meth]
            has_a, has_b = MODELS.get(ma.model, (True, True))
            blocks = []
            if has_a:
                blocks.append((0, ma.a, ma.a_err, ma.a_err_indep, d.a_true))
            if has_b:
                blocks.append((K, ma.b, ma.b_err, ma.b_err_indep, d.b_true))
            for off, est, est_err, est_ind, truth in blocks:
                for i in range(K):
                    x, e, t = _as_f64(est[:, i]), _as_f64(est_err[:, i]), _as_f64(truth[:, i])
                    ei = _as_f64(est_ind[:, i])
                    diff = x - t
                    p = off + i
                    out["bias"][s, m, p] = diff.mean()
                    if N > 1:
                        sc = x.std(ddof=1)
                        out["scatter"][s, m, p] = sc
                        if sc > 0:
                            out["bias_over_error"][s, m, p] = diff.mean() / (sc / np.sqrt(N))
                    good = np.isfinite(e) & (e > 0)
                    if good.any():
                        le = e[good].mean()
                        out["likelihood_error"][s, m, p] = le
                        out["error_ratio"][s, m, p] = out["scatter"][s, m, p] / le
                        pulls = diff[good] / e[good]
                        if pulls.size > 1:
                            out["pull_std"][s, m, p] = pulls.std(ddof=1)
                        out["coverage68"][s, m, p] = np.mean(np.abs(pulls) < 1.0)
                        out["coverage95"][s, m, p] = np.mean(np.abs(pulls) < _Z95)
                    ej = np.sqrt(np.maximum(_as_f64(d.jackknife.method_cov[:, m, p, p]), 0.0))
                    for kind, err_i in (("indep", ei), ("jackknife", ej)):
                        good = np.isfinite(err_i) & (err_i > 0)
                        if good.any():
                            pulls = diff[good] / err_i[good]
                            out[f"coverage68_{kind}"][s, m, p] = np.mean(np.abs(pulls) < 1.0)
                            out[f"coverage95_{kind}"][s, m, p] = np.mean(np.abs(pulls) < _Z95)
    return RecoveryTable(
        scenarios=scen, methods=tuple(methods), parameters=params,
        n_realisations=np.array([data[s].n_realisations for s in scen], dtype=np.int64),
        **out, w_only=w_only)


def compute_tables(res: ResultsFile, alpha: float) -> tuple[Table2, Table3, RecoveryTable]:
    """All three tables of an aggregated results file.

    Parameters
    ----------
    res : ResultsFile
        An open results file (``/scenarios`` written).
    alpha : float
        Level of the likelihood-ratio tests.
    """
    data = {s: res.scenario(s) for s in res.scenarios}
    return (
        table2(data, res.lrt_pairs, res.likelihoods, alpha, res.calibration()),
        table3(data, res.method_names),
        recovery_table(data, res.method_names, len(res.coords.template)),
    )


# --------------------------------------------------------------------------- run directory


def _git_hash() -> str:
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def reduce_run(run_dir: str | Path, *, alpha: float | None = None, lock: bool = True) -> Path:
    """Aggregate the task files of ``run_dir`` into ``run_dir/results.h5`` with tables.

    Holds the run directory's lock (:class:`hpcsys.rundir.RunLock`) while it
    works and first removes the temporary files of killed writers
    (:func:`hpcsys.rundir.remove_litter`), with a note on standard error.

    Parameters
    ----------
    run_dir : str or Path
        A directory made by :func:`hpcsys.parallel.run_tasks` (holds ``config.yaml``
        and ``tasks/``).
    alpha : float, optional
        Test level for Table 2 (default ``analysis.alpha`` of the config).
    lock : bool
        Take the lock and clean up (False: the caller, a run, already holds it).

    Returns
    -------
    Path
        The results file, written atomically (:mod:`hpcsys.io.atomic`).

    Raises
    ------
    RunError
        Not a run directory, in use by a live run, or some tasks are missing,
        torn or damaged (names them).
    DiskFullError
        No space for ``results.h5`` (names the path and the space needed).
    """
    import sys

    from hpcsys.rundir import CONFIG_FILE, RunError, RunLock, remove_litter

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise RunError(f"{run_dir}: not a run directory (no {CONFIG_FILE})")
    if not lock:
        return _reduce_locked(run_dir, alpha)
    with RunLock(run_dir) as held:
        notes = [held.note] if held.note else []
        litter = remove_litter(run_dir)
        if litter:
            notes.append(f"removed {len(litter)} temporary file(s) of killed runs "
                         f"({', '.join(p.name for p in litter[:3])}"
                         f"{', ...' if len(litter) > 3 else ''})")
        for note in notes:
            sys.stderr.write(f"[hpcsys] note: {note}\n")
        return _reduce_locked(run_dir, alpha)


def _reduce_locked(run_dir: Path, alpha: float | None) -> Path:
    import json
    import socket

    import h5py

    from hpcsys._version import __version__
    from hpcsys.config import load_config
    from hpcsys.core.models import FIT_MODELS, LRT_PAIRS
    from hpcsys.io import (
        SCHEMA_VERSION,
        Coordinates,
        Provenance,
        TaskFileError,
        TemplateInfo,
        open_results,
        read_dataclass,
        read_task,
        task_path,
        task_status,
        write_calibration,
        write_results,
        write_tables,
    )
    from hpcsys.io.atomic import DiskFullError, atomic_path
    from hpcsys.io.results import utc_now
    from hpcsys.io.schema import SKIPPED_FIELDS
    from hpcsys.pipeline import STAGES, RealisationResult
    from hpcsys.rundir import (
        CONFIG_FILE,
        INFO_FILE,
        RESULTS_FILE,
        TEMPLATES_FILE,
        RunError,
        science_hash,
    )

    cfg_file = run_dir / CONFIG_FILE
    config = load_config(cfg_file)
    text = cfg_file.read_text()
    h = science_hash(config)
    tasks = [(s, i) for s in config.run.scenarios for i in range(config.run.n_realisations)]
    missing = [t for t in tasks if not task_status(task_path(run_dir, *t)).complete]
    if missing:
        names = ", ".join(f"{s}[{i}]" for s, i in missing[:5])
        raise RunError(f"{run_dir}: {len(missing)} of {len(tasks)} tasks missing or incomplete "
                       f"({names}{', ...' if len(missing) > 5 else ''}); run again with "
                       f"--resume")
    records: dict[str, list[Any]] = {s: [] for s in config.run.scenarios}
    hosts: list[str] = []
    for scenario, index in tasks:
        p = task_path(run_dir, scenario, index)
        # per-pixel maps are not aggregated: not reading them keeps rank 0's memory to the
        # summaries (at paper scale the maps are ~9 MB per task)
        try:
            records[scenario].append(read_task(p, RealisationResult, cfg_hash=h,
                                               skip=SKIPPED_FIELDS))
        except TaskFileError as exc:
            raise RunError(str(exc)) from None
        except Exception as exc:  # opened but a dataset does not read back
            raise RunError(f"{p}: damaged task file ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:120]}); delete it and run again with "
                           f"--resume to redo the task") from None
        with h5py.File(p, "r") as f:
            hosts.append(str(f.attrs.get("host", "")))
    calibration = _read_calibration(run_dir, config, h)
    info = {}
    if (run_dir / INFO_FILE).is_file():
        info = json.loads((run_dir / INFO_FILE).read_text())
    templates = None
    if (run_dir / TEMPLATES_FILE).is_file():
        with h5py.File(run_dir / TEMPLATES_FILE, "r") as f:
            templates = read_dataclass(f["templates"], TemplateInfo)
    K = config.n_templates
    names = templates.names if templates is not None else tuple(f"t{i}" for i in range(K))
    coords = Coordinates(
        scenario=config.run.scenarios, method=config.methods.names,
        likelihood=config.methods.likelihoods, fit_model=FIT_MODELS,
        lrt_pair=tuple(f"{a}/{b}" for a, b in LRT_PAIRS), stage=STAGES, template=names)
    prov = Provenance(
        schema_version=SCHEMA_VERSION, hpcsys_version=__version__, git_hash=_git_hash(),
        config_text=text, config_source=str(info.get("config_source", cfg_file)),
        master_seed=config.run.master_seed, created=utc_now(),
        n_ranks=int(info.get("n_ranks", 1)),
        hosts=tuple(info.get("hosts", ())) or tuple(dict.fromkeys(hosts)) or (socket.gethostname(),),
        devices=tuple(info.get("devices", ())), n_tasks=len(tasks))
    path = run_dir / RESULTS_FILE
    try:
        with atomic_path(path) as tmp:  # .tmp-results-<pid>.h5 until the tables are in
            write_results(tmp, records, coords=coords, provenance=prov, templates=templates)
            if calibration is not None:
                write_calibration(tmp, calibration)
            with open_results(tmp) as res:
                t2, t3, rec = compute_tables(
                    res, alpha=config.analysis.alpha if alpha is None else alpha)
            write_tables(tmp, t2, t3, rec)
    except DiskFullError as exc:  # name the file the user knows, not its temporary
        raise DiskFullError(exc.errno, f"{path}: {str(exc).split(': ', 1)[-1]}") from None
    return path


def _read_calibration(run_dir: Path, config: Any, cfg_hash: str) -> CalibrationData | None:
    """Stack the calibration task files of a run (None when it has no calibration set).

    Raises
    ------
    RunError
        Some calibration tasks are missing, incomplete or of another
        configuration, or they were computed at different bootstrap points.
    """
    from hpcsys.calibration import (
        BOOTSTRAP_MODELS,
        CalibrationResult,
        calibration_path,
        same_points,
    )
    from hpcsys.io import TaskFileError, read_task, task_status
    from hpcsys.rundir import RunError

    M = config.analysis.calibration_realisations
    if M == 0:
        return None
    paths = [calibration_path(run_dir, j) for j in range(M)]
    missing = [p for p in paths if not task_status(p).complete]
    if missing:
        raise RunError(f"{run_dir}: {len(missing)} of {M} calibration tasks missing or "
                       f"incomplete ({', '.join(p.name for p in missing[:5])}"
                       f"{', ...' if len(missing) > 5 else ''}); run again with --resume")
    try:
        recs = [read_task(p, CalibrationResult, cfg_hash=cfg_hash) for p in paths]
    except TaskFileError as exc:
        raise RunError(str(exc)) from None
    a0, b0 = recs[0].bootstrap_a, recs[0].bootstrap_b
    stale = [p.name for p, r in zip(paths, recs)
             if not (same_points(r.bootstrap_a, a0) and same_points(r.bootstrap_b, b0))]
    if stale:
        raise RunError(f"{run_dir}: calibration tasks {', '.join(stale[:5])} were computed at "
                       f"other bootstrap points than {paths[0].name}; delete them and run "
                       f"again with --resume")
    return CalibrationData(
        scenarios=tuple(config.run.scenarios), bootstrap_models=BOOTSTRAP_MODELS,
        index=np.array([r.index for r in recs], dtype=np.int64),
        seed_words=np.stack([r.seed_words for r in recs]),
        statistic=np.stack([r.statistic for r in recs]),
        null_pvalue=np.stack([r.null_pvalue for r in recs]),
        bootstrap_a=np.asarray(a0, dtype=float), bootstrap_b=np.asarray(b0, dtype=float))
