"""Typed summary tables of a run and their text / CSV / LaTeX / Markdown rendering.

The tables are computed by :mod:`hpcsys.reduction` and stored under
``/tables`` of ``results.h5``; they are defined here (a leaf module) so that
readers need nothing but :mod:`hpcsys.io`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["FORMATS", "RecoveryTable", "Table2", "Table3", "render_report", "render_table"]

#: Output formats of :func:`render_report`.
FORMATS: tuple[str, ...] = ("text", "csv", "latex", "markdown")


@dataclass(frozen=True)
class Table2:
    """Rejection fractions of the likelihood-ratio tests (Berlfein+24 Table 2, Eq. 19).

    For each scenario, LRT pair ``(null model, alternative)`` and likelihood,
    the fraction of realisations in which the null model is rejected at level
    ``alpha``, with binomial errors sqrt(f (1 - f) / N). Where the scenario's
    contamination model is nested in the test's null model (``null_true``) the
    fraction is the test's *size* (should be ``alpha``), elsewhere its *power*.
    Two versions (docs/correlated_pixels.rst):

    * ``wilks``: reject when the chi-square(dof) p-value is below ``alpha``
      (assumes independent pixels; over-rejects on correlated skies);
    * ``calibrated``: reject when the empirical p-value
      ``(1 + #{lambda_cal >= lambda}) / (1 + M)`` against the M values of
      lambda of the run's calibration set (:mod:`hpcsys.calibration`: null
      mocks with their own random streams, disjoint from the evaluated
      realisations; exact null mocks for tests of the ``null`` model, a
      parametric bootstrap at the scenario-mean fitted null for the others,
      ``calibration_source``) is at most ``alpha``. No p-value is below
      1/(M + 1): with M < 1/alpha - 1 the calibrated test cannot reject (the
      report says so); with M = 0 (no calibration set) the columns are ``nan``;
    * ``wald``: reject when the Wald test of the alternative's extra
      coefficients with the honest (harmonic sandwich) covariance has a
      chi-square p-value below ``alpha`` (no mocks needed; holds its size on a
      correlated sky, docs/correlated_pixels.rst).

    Attributes
    ----------
    scenarios : tuple of str, length S
    lrt_pairs : tuple of str, length Q (``"null/alt"``)
    likelihoods : tuple of str, length L
    n_realisations : ndarray of int, shape (S,)
    alpha : float
    n_calibration : int
        Calibration mocks M (0: none).
    critical_lambda : ndarray, shape (S, Q, L)
        Empirical ``1 - alpha`` quantile of the calibration lambda of each cell.
    fraction_wilks, error_wilks, fraction_calibrated, error_calibrated : ndarray, shape (S, Q, L)
    fraction_wald, error_wald : ndarray, shape (S, Q, L)
        Wald rejection fraction and its binomial error.
    calibration_source : tuple of str, length Q
        How each test is calibrated (:func:`hpcsys.calibration.calibration_source`).
    null_true : ndarray of bool, shape (S, Q)
        The cell measures a size (True) or a power (False).
    calibration_wilks_fraction, calibration_wilks_error : ndarray, shape (Q, L)
        Wilks rejection fraction on the M exact null mocks of the calibration
        set (the Wilks size of the tests of ``null`` with M draws; ``nan`` elsewhere).
    """

    scenarios: tuple[str, ...]
    lrt_pairs: tuple[str, ...]
    likelihoods: tuple[str, ...]
    n_realisations: np.ndarray
    alpha: float
    n_calibration: int
    critical_lambda: np.ndarray
    fraction_wilks: np.ndarray
    error_wilks: np.ndarray
    fraction_calibrated: np.ndarray
    error_calibrated: np.ndarray
    fraction_wald: np.ndarray
    error_wald: np.ndarray
    calibration_source: tuple[str, ...]
    null_true: np.ndarray
    calibration_wilks_fraction: np.ndarray
    calibration_wilks_error: np.ndarray


@dataclass(frozen=True)
class Table3:
    """Amplitude bias of w(theta) (Berlfein+24 Table 3, Eqs. 25-26).

    Per realisation, each estimate ``w_x`` (uncorrected ``w_obs`` or a
    method's ``w_corrected``) is fitted as ``A w_ref`` by generalised least
    squares with the covariance ``C`` of ``w_true`` across the scenario's
    realisations (Hartlap-corrected inverse), ``w_ref`` = mean ``w_true``,
    ``sigma_A = (w_ref^T C^-1 w_ref)^(-1/2)``. The bias is
    ``dA = A(w_x) - A(w_true)`` of the same realisation (paired, so the
    cosmic variance shared by both cancels; its mean equals ``mean A(w_x) - 1``
    exactly because the fit is linear). Tabulated: mean ``dA / sigma_A`` and its
    standard error over realisations.

    Attributes
    ----------
    scenarios : tuple of str, length S
    estimators : tuple of str, length E (``uncorrected`` then the methods)
    n_realisations : ndarray of int, shape (S,)
    n_bins : int
    hartlap_factor : ndarray, shape (S,)
        ``(N - B - 2) / (N - 1)`` when the Hartlap-corrected sample inverse is
        used (N > B + 2); ``nan`` when the Ledoit-Wolf shrinkage covariance is
        used instead (2 <= N <= B + 2) or none exists (N < 2, entries ``nan``).
    sigma_A : ndarray, shape (S,)
    mean_dA_over_sigma, error_dA_over_sigma : ndarray, shape (S, E)
        With the full template cross-correlation correction (Eq. 16).
    mean_dA_over_sigma_diag, error_dA_over_sigma_diag : ndarray, shape (S, E)
        With template autocorrelations only (no cross terms); ``nan`` for
        map-weighting methods (ISD: no Eq. 16 terms; the report says so).
    covariance_note : tuple of str, length S
        Which covariance of w each scenario used and why
        (:func:`hpcsys.reduction.w_covariance_inverse`), printed by the report.
    mean_shift_over_sigma, error_shift_over_sigma : ndarray, shape (S, E)
        What each correction changed: mean over realisations of
        ``(A(w_x) - A(w_obs)) / sigma_A`` (paired; zero for ``uncorrected``)
        and its standard error. In the ``null`` scenario there is nothing to
        correct, so it must be consistent with zero (an over-correction
        otherwise).
    """

    scenarios: tuple[str, ...]
    estimators: tuple[str, ...]
    n_realisations: np.ndarray
    n_bins: int
    hartlap_factor: np.ndarray
    sigma_A: np.ndarray
    mean_dA_over_sigma: np.ndarray
    error_dA_over_sigma: np.ndarray
    mean_dA_over_sigma_diag: np.ndarray
    error_dA_over_sigma_diag: np.ndarray
    covariance_note: tuple[str, ...]
    mean_shift_over_sigma: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    error_shift_over_sigma: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))


@dataclass(frozen=True)
class RecoveryTable:
    """Recovery of the contamination parameters by each method (docs/science/tables.rst).

    For scenario s, method m and parameter p (``a_i`` or ``b_i``) over the N
    realisations: ``bias`` = mean(estimate - truth); ``scatter`` = standard
    deviation of the estimates (mock-to-mock); ``bias_over_error`` =
    bias / (scatter / sqrt(N)); ``likelihood_error`` = mean of the method's own
    1-sigma error; ``error_ratio`` = scatter / likelihood_error (1 when the
    likelihood errors are honest, > 1 on correlated skies); ``pull_std`` =
    standard deviation of (estimate - truth) / error; ``coverage68/95`` = fraction
    of realisations with abs(estimate - truth) below 1 / 1.95996 errors (the method's
    default errors: honest, i.e. the harmonic sandwich, for OLS);
    ``coverage68_indep/95_indep`` the same with the independent-pixel errors
    (``a_err_indep``). ``nan`` where a method does not estimate a parameter or
    gives no such errors.

    Attributes
    ----------
    scenarios : tuple of str, length S
    methods : tuple of str, length M
    parameters : tuple of str, length P = 2K
    n_realisations : ndarray of int, shape (S,)
    bias, scatter, bias_over_error, likelihood_error, error_ratio, pull_std,
    coverage68, coverage95, coverage68_indep, coverage95_indep : ndarray, shape (S, M, P)
    coverage68_jackknife, coverage95_jackknife : ndarray, shape (S, M, P)
        The same with each task's delete-one-region jackknife errors
        (``jackknife/method_cov``; ``nan`` where not computed).
    w_only : tuple of str
        Methods judged through w(theta) only (ISD: their coefficients are
        weights, not (a, b)); their rows are ``nan`` and the report says why.
    """

    scenarios: tuple[str, ...]
    methods: tuple[str, ...]
    parameters: tuple[str, ...]
    n_realisations: np.ndarray
    bias: np.ndarray
    scatter: np.ndarray
    bias_over_error: np.ndarray
    likelihood_error: np.ndarray
    error_ratio: np.ndarray
    pull_std: np.ndarray
    coverage68: np.ndarray
    coverage95: np.ndarray
    coverage68_indep: np.ndarray
    coverage95_indep: np.ndarray
    w_only: tuple[str, ...] = ()
    coverage68_jackknife: np.ndarray = field(default_factory=lambda: np.empty((0, 0, 0)))
    coverage95_jackknife: np.ndarray = field(default_factory=lambda: np.empty((0, 0, 0)))


# --------------------------------------------------------------------------- rendering


def _fmt(x: float, digits: int = 3) -> str:
    if not np.isfinite(x):
        return "nan"
    return f"{x:.{digits}f}"


def _pm(v: float, e: float, fmt: str) -> str:
    if fmt == "latex":
        return f"${_fmt(v)} \\pm {_fmt(e)}$"
    if fmt == "csv":
        return f"{_fmt(v)}"
    return f"{_fmt(v)} ± {_fmt(e)}"


def render_table(title: str, header: list[str], rows: list[list[str]], fmt: str) -> str:
    """Render one table as ``text``, ``csv``, ``latex`` or ``markdown``."""
    if fmt not in FORMATS:
        raise ValueError(f"format: must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if fmt == "csv":
        esc = lambda s: f'"{s}"' if ("," in s or '"' in s) else s  # noqa: E731
        lines = [f"# {title}", ",".join(esc(h) for h in header)]
        lines += [",".join(esc(c) for c in r) for r in rows]
        return "\n".join(lines)
    if fmt == "markdown":
        lines = [f"**{title}**", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    if fmt == "latex":
        tex = lambda s: s.replace("_", r"\_").replace("%", r"\%")  # noqa: E731
        lines = [r"\begin{table}", r"\centering", rf"\caption{{{tex(title)}}}",
                 r"\begin{tabular}{" + "l" * len(header) + "}", r"\hline",
                 " & ".join(tex(h) for h in header) + r" \\", r"\hline"]
        lines += [" & ".join(c if c.startswith("$") else tex(c) for c in r) + r" \\"
                  for r in rows]
        lines += [r"\hline", r"\end{tabular}", r"\end{table}"]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = [title, "=" * len(title), line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _table2_rows(t: Table2, fmt: str) -> tuple[list[str], list[list[str]]]:
    header = ["scenario", "N", "likelihood", "test (null/alt)", "measures",
              "rejected (Wilks, assumes independent pixels)", "rejected (Wald, sandwich)",
              f"rejected (mock-calibrated, M = {t.n_calibration})"]
    if fmt == "csv":
        header = ["scenario", "N", "likelihood", "test", "measures", "wilks", "wilks_err",
                  "calibrated", "calibrated_err"]
        header[7:7] = ["wald", "wald_err"]
    rows = []
    for s, sc in enumerate(t.scenarios):
        for li, lk in enumerate(t.likelihoods):
            for q, pair in enumerate(t.lrt_pairs):
                r = [sc, str(int(t.n_realisations[s])), lk, pair,
                     "size" if t.null_true[s, q] else "power"]
                fw, ew = t.fraction_wilks[s, q, li], t.error_wilks[s, q, li]
                fc, ec = t.fraction_calibrated[s, q, li], t.error_calibrated[s, q, li]
                if fmt == "csv":
                    r += [_fmt(fw), _fmt(ew), _fmt(fc), _fmt(ec)]
                else:
                    r += [_pm(fw, ew, fmt), _pm(fc, ec, fmt)]
                fa, ea = t.fraction_wald[s, q, li], t.error_wald[s, q, li]  # beside Wilks
                at = 7 if fmt == "csv" else 6
                r[at:at] = [_fmt(fa), _fmt(ea)] if fmt == "csv" else [_pm(fa, ea, fmt)]
                rows.append(r)
    return header, rows


def _table2_notes(t: Table2) -> list[str]:
    """Lines under Table 2: the calibration set, its resolution, its Wilks size."""
    m = t.n_calibration
    if m == 0:
        return ["Mock-calibrated columns: nan, the run has no calibration set "
                "(analysis.calibration_realisations = 0)."]
    notes = [f"Calibration set: M = {m} null mocks with their own random streams "
             "(none shared with the evaluated realisations)."]
    for q, pair in enumerate(t.lrt_pairs):
        notes.append(f"  {pair}: {t.calibration_source[q]}")
    if 1.0 / (m + 1) > t.alpha:
        notes.append(f"NB: {m} calibration mocks cannot calibrate a test at this alpha "
                     f"(smallest p = 1/(M+1) = {1.0 / (m + 1):.3f}); the calibrated test "
                     "never rejects")
    sizes = [f"{pair} {lk} {t.calibration_wilks_fraction[q, li]:.3f} ± "
             f"{t.calibration_wilks_error[q, li]:.3f}"
             for q, pair in enumerate(t.lrt_pairs) for li, lk in enumerate(t.likelihoods)
             if np.isfinite(t.calibration_wilks_fraction[q, li])]
    if sizes:
        notes.append(f"Wilks size on the M = {m} exact null mocks: " + "; ".join(sizes))
    return notes


def _table3_rows(t: Table3, fmt: str) -> tuple[list[str], list[list[str]]]:
    if fmt == "csv":
        header = ["scenario", "N", "estimator", "dA_over_sigma", "error",
                  "dA_over_sigma_diag", "error_diag"]
    else:
        header = ["scenario", "N", "estimator", "dA/sigma_A (Eq. 16)", "dA/sigma_A (no cross terms)"]
    rows = []
    for s, sc in enumerate(t.scenarios):
        for e, est in enumerate(t.estimators):
            r = [sc, str(int(t.n_realisations[s])), est]
            m, err = t.mean_dA_over_sigma[s, e], t.error_dA_over_sigma[s, e]
            md, ed = t.mean_dA_over_sigma_diag[s, e], t.error_dA_over_sigma_diag[s, e]
            if fmt == "csv":
                r += [_fmt(m), _fmt(err), _fmt(md), _fmt(ed)]
            else:
                r += [_pm(m, err, fmt), _pm(md, ed, fmt)]
            rows.append(r)
    return header, rows


def _table3_notes(t: Table3) -> list[str]:
    """Lines under Table 3: the covariance of each scenario, and why any entry is nan."""
    notes = [f"Covariance ({sc}): {t.covariance_note[s]}" for s, sc in enumerate(t.scenarios)]
    diag_nan = [e for i, e in enumerate(t.estimators)
                if np.all(np.isnan(t.mean_dA_over_sigma_diag[:, i]))
                and np.any(np.isfinite(t.mean_dA_over_sigma[:, i]))]
    if diag_nan:
        notes.append(f"No-cross-terms column n/a for {', '.join(diag_nan)}: they weight the "
                     "map and re-measure w (no Eq. 16 terms to drop)")
    few = [sc for s, sc in enumerate(t.scenarios) if int(t.n_realisations[s]) < 2]
    if few:
        notes.append(f"nan errors for {', '.join(few)}: one realisation has no scatter")
    return notes


def _recovery_rows(t: RecoveryTable, fmt: str) -> tuple[list[str], list[list[str]]]:
    header = ["scenario", "method", "param", "bias/(scatter/sqrtN)", "scatter",
              "likelihood err", "scatter/err", "pull std", "cov68", "cov95",
              "cov68 (indep. pixels)", "cov95 (indep. pixels)", "cov68 (jackknife)",
              "cov95 (jackknife)"]
    if fmt == "csv":
        header = ["scenario", "method", "parameter", "bias_over_error", "scatter",
                  "likelihood_error", "error_ratio", "pull_std", "coverage68", "coverage95",
                  "coverage68_indep", "coverage95_indep", "coverage68_jackknife",
                  "coverage95_jackknife"]
    jk = t.coverage68_jackknife.size > 0
    rows = []
    for s, sc in enumerate(t.scenarios):
        for m, meth in enumerate(t.methods):
            for p, par in enumerate(t.parameters):
                if not np.isfinite(t.scatter[s, m, p]) or t.scatter[s, m, p] == 0.0:
                    continue  # the method does not estimate this parameter
                vals = (t.bias_over_error, t.scatter, t.likelihood_error, t.error_ratio,
                        t.pull_std, t.coverage68, t.coverage95, t.coverage68_indep,
                        t.coverage95_indep)
                row = [sc, meth, par, *(_fmt(v[s, m, p], 4 if v is t.scatter or
                                              v is t.likelihood_error else 2) for v in vals)]
                row += ([_fmt(t.coverage68_jackknife[s, m, p], 2),
                         _fmt(t.coverage95_jackknife[s, m, p], 2)] if jk else ["nan", "nan"])
                rows.append(row)
    return header, rows


def _with_notes(text: str, notes: list[str], fmt: str) -> str:
    """A rendered table with its note lines under it (none in LaTeX)."""
    if fmt == "text":
        return text + "\n" + "\n".join(notes)
    if fmt == "markdown":
        return text + "\n\n" + "\n\n".join(notes)
    if fmt == "csv":
        return text + "\n" + "\n".join(f"# {n}" for n in notes)
    return text


def render_report(table2: Table2 | None, table3: Table3 | None,
                  recovery: RecoveryTable | None, fmt: str = "text") -> str:
    """Render Table 2, Table 3 and the recovery summary in one of :data:`FORMATS`."""
    parts = []
    if table2 is not None:
        title = (f"Table 2: fraction of realisations rejecting the null model at "
                 f"alpha = {table2.alpha:g} (Wilks chi2, assumes independent pixels; Wald "
                 f"with the sandwich covariance; mock-calibrated on "
                 f"{table2.n_calibration} independent null mocks); 'size' where the "
                 f"null model is true, else 'power'")
        parts.append(_with_notes(render_table(title, *_table2_rows(table2, fmt), fmt),
                                 _table2_notes(table2), fmt))
    if table3 is not None:
        title = ("Table 3: amplitude bias dA/sigma_A of w(theta), mean ± error over "
                 "realisations (GLS, mock covariance of w_true)")
        parts.append(_with_notes(render_table(title, *_table3_rows(table3, fmt), fmt),
                                 _table3_notes(table3), fmt))
    if recovery is not None:
        title = ("Parameter recovery: bias in units of scatter/sqrt(N), the methods' errors "
                 "(honest: sandwich for OLS and MCMC, jackknife for ElasticNet) vs mock-to-mock "
                 "scatter, pulls and coverage; coverage of the independent-pixel errors beside")
        text = render_table(title, *_recovery_rows(recovery, fmt), fmt)
        if recovery.w_only:
            note = (f"{', '.join(recovery.w_only)}: judged through w(theta) only (Table 3); "
                    "their coefficients describe weights, not (a, b)")
            text += {"text": "\n", "markdown": "\n\n", "csv": "\n# "}.get(fmt, "\n") + note
        parts.append(text)
    return "\n\n".join(parts) + "\n"
