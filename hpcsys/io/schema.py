"""Layout of the aggregated results file ``RUN_DIR/results.h5`` (schema version 3).

One HDF5 file per run, written by rank 0 only (no parallel HDF5), atomically
(temporary name, then :func:`os.replace`). Read it with
:func:`hpcsys.io.open_results`; the layout below is the contract. It follows
the nesting of the per-realisation result dataclasses
(:class:`hpcsys.pipeline.RealisationResult`) generically: a nested dataclass
is a sub-group of the field's name, a tuple of named dataclasses a sub-group
per name, an array or scalar a dataset stacked over realisations, a string
equal in every realisation an attribute.

Axes are HDF5 dimension scales (netCDF-4 compatible): every named axis of a
dataset is attached to the scale dataset of that name, so
``xarray.open_dataset(path, group="scenarios/additive", engine="h5netcdf")``
gives labelled dimensions. The scales of the shared axes are at the root (an
ancestor of every group, as netCDF requires); the realisation axis of a
scenario is its ``index`` dataset.

Root attributes (provenance)
----------------------------
``schema_version`` (int), ``hpcsys_version``, ``git_hash`` ('' if unknown),
``config_text`` (the resolved YAML), ``config_source``, ``master_seed``,
``created`` (ISO 8601 UTC), ``n_ranks``, ``hosts`` and ``devices`` (string
arrays: where the tasks ran), ``n_tasks``.

Root datasets (dimension scales)
--------------------------------
String labels of each named axis: ``scenario``, ``method``, ``likelihood``,
``fit_model``, ``lrt_pair`` (``"null_model/alt_model"``), ``stage``,
``template``, ``estimator`` (``uncorrected`` then the methods), ``parameter``
(``a_0 .. a_{K-1}, b_0 .. b_{K-1}``); ``theta_arcmin`` (the bin centres of
w(theta), identical for all tasks: the scale of the angular-bin axis) and
``word`` (``0 .. 3``, the seed-word axis), ``bound`` (``lower``, ``upper``:
the ends of an interval); ``template2`` and ``parameter2``
repeat the labels of ``template`` and ``parameter`` for the second axis of a
square matrix (netCDF and xarray want distinct dimension names).

Groups and datasets
-------------------
``/templates/``
    ``names`` (template), ``correlation`` (template, template2) and ``xi``
    (theta_arcmin, template, template2; absent when templates are redrawn): template
    names, their correlation matrix on the footprint, and the template auto- and
    cross-correlation functions xi_ij(theta) used in Berlfein+24 Eq. 16.
``/scenarios/<scenario>/``
    Attribute ``scenario``. Per-realisation results stacked along axis 0
    (dimension ``index``), sorted by realisation index:

    ``index`` (index), ``seed_words`` (index, word),
    ``a_true``, ``b_true`` (index, template),
    ``w_true``, ``w_obs`` (index, theta_arcmin),
    ``w_corrected``, ``w_corrected_diag``, ``w_remeasured`` (index, method,
    theta_arcmin);

    ``methods/<name>/`` with attributes ``name``, ``model`` and datasets
    ``a, b, a_err, b_err, a_mean, b_mean, a_std, b_std, a_err_indep,
    b_err_indep`` (index, template), the posterior summaries of the MCMC
    methods (``nan`` for the others) ``a_median, b_median, a_ess, b_ess``
    (index, template) and ``a_ci68, b_ci68, a_ci95, b_ci95`` (index,
    template, bound), ``cov``, ``cov_indep`` (index, parameter, parameter2),
    ``sigma`` (index) and the group ``diagnostics/``: ``converged``,
    ``n_iterations``, ``acceptance_fraction``, ``autocorr_time``,
    ``effective_samples``, ``rhat_max``, ``stop_reason``, ``hit_pole``,
    ``wall_time``, ``penalty`` and ``l1_ratio`` (ElasticNet's cross-validated
    choice), ``message`` (index). Per-pixel maps (weights, corrected map) stay in the
    per-task files.

    ``mle/``: ``loglike, converged, hit_pole, s, g`` (index, fit_model,
    likelihood), ``a, b, a_err, b_err, a_err_indep, b_err_indep`` (index,
    fit_model, likelihood, template) and ``cov`` (index, fit_model,
    likelihood, parameter, parameter2).

    ``lrt/``: ``statistic, pvalue`` (index, lrt_pair, likelihood), ``dof``
    (index, lrt_pair): Berlfein+24 Eq. 19 and its Wilks p-value;
    ``wald_statistic, wald_pvalue`` (index, lrt_pair, likelihood) and
    ``wald_dof`` (index, lrt_pair): the Wald test with the honest covariance.

    Error names: ``a_err``, ``b_err``, ``cov`` are the honest errors (the
    harmonic sandwich, which holds on a correlated sky) wherever a method has
    them (OLS, every MLE fit); ``*_indep`` the independent-pixel ones (inverse
    Hessian, ``s^2 (T T^T)^-1``), ``nan`` where a method has none.

    ``timings/``: ``stage_seconds`` (index, stage), ``peak_memory_mb`` (index).
``/calibration/`` (when ``analysis.calibration_realisations`` > 0)
    The calibration set of Table 2 (:mod:`hpcsys.calibration`,
    :class:`hpcsys.io.CalibrationData`): attribute ``n_calibration`` (M);
    scales ``calibration_index`` (M: the index j of the calibration streams)
    and ``bootstrap_model`` (the free null models, ``additive``,
    ``multiplicative``); ``scenario_label`` (the scenario axis);
    ``seed_words`` (calibration_index, word); ``statistic``
    (calibration_index, scenario, lrt_pair, likelihood): the calibration lambda
    of each cell; ``null_pvalue`` (calibration_index, lrt_pair, likelihood):
    Wilks p-values on the exact null mocks; ``bootstrap_a``, ``bootstrap_b``
    (scenario, bootstrap_model, template): the bootstrap points.
``/tables/table2/``
    Rejection fraction of each null model (Berlfein+24 Table 2): see
    :class:`hpcsys.io.tables.Table2`.
``/tables/table3/``
    Amplitude bias dA/sigma_A (Berlfein+24 Table 3, Eqs. 25-26): see
    :class:`hpcsys.io.tables.Table3`.
``/tables/recovery/``
    Parameter recovery per method: see :class:`hpcsys.io.tables.RecoveryTable`.

Schema version 3 added the honest errors (``a_err``, ``b_err``, ``cov`` of
OLS and the MLE fits from the harmonic sandwich, the independent-pixel ones
as ``*_indep``), the Wald tests, ``/jackknife``, the MCMC posterior
summaries (medians, intervals, ESS per parameter, R-hat, stop reason),
``/calibration`` and the calibration fields of Table 2 (``critical_lambda``
per scenario, ``n_calibration`` instead of ``null_scenario``); version 2
files are refused (run again). Schema version 1 stored the axis names in a
comma-separated ``dims`` attribute, the labels under ``/coords``, the LRT
statistic as ``lrt/lambda`` and the method diagnostics flat in
``methods/<name>/``; :func:`hpcsys.io.open_results` refuses such files with
one line naming the version.
"""

from __future__ import annotations

__all__ = [
    "AXES",
    "BOUNDS",
    "DATASET_DIMS",
    "REALISATION_AXIS",
    "SCHEMA_VERSION",
    "SKIPPED_FIELDS",
    "VOLATILE",
    "dims_for",
    "is_volatile",
]

#: Version of the layout; bump on any incompatible change.
SCHEMA_VERSION: int = 3

#: Per-pixel fields that stay in per-task files and are not aggregated.
SKIPPED_FIELDS: frozenset[str] = frozenset({"weights", "corrected"})

#: Path fragments of datasets that legitimately differ between two runs of the same
#: configuration (wall times, free-text messages that quote them); everything else is
#: bit-for-bit reproducible whatever the number of ranks.
VOLATILE: tuple[str, ...] = ("timings/", "/wall_time", "/message")

#: Dimension of the realisations of a scenario: its ``index`` dataset is the scale.
REALISATION_AXIS: str = "index"
#: Named axes whose dimension scales are root datasets of the same name.
AXES: tuple[str, ...] = ("scenario", "method", "likelihood", "fit_model", "lrt_pair", "stage",
                         "template", "estimator", "parameter", "theta_arcmin", "word",
                         "template2", "parameter2", "bound")
#: Labels of the ``bound`` axis (the two ends of an interval).
BOUNDS: tuple[str, ...] = ("lower", "upper")

_R, _BIN = REALISATION_AXIS, "theta_arcmin"
#: Axis names of the datasets under ``/scenarios/<scenario>/``, by path relative to
#: the scenario group (``*`` matches one method name).
DATASET_DIMS: dict[str, tuple[str, ...]] = {
    "index": (_R,),
    "seed_words": (_R, "word"),
    "a_true": (_R, "template"),
    "b_true": (_R, "template"),
    "w_true": (_R, _BIN),
    "w_obs": (_R, _BIN),
    "w_corrected": (_R, "method", _BIN),
    "w_corrected_diag": (_R, "method", _BIN),
    "w_remeasured": (_R, "method", _BIN),
    **{f"methods/*/{k}": (_R, "template") for k in
       ("a", "b", "a_err", "b_err", "a_mean", "b_mean", "a_std", "b_std", "a_err_indep",
        "b_err_indep")},
    **{f"methods/*/{k}": (_R, "template") for k in ("a_median", "b_median", "a_ess", "b_ess")},
    **{f"methods/*/{k}": (_R, "template", "bound") for k in
       ("a_ci68", "b_ci68", "a_ci95", "b_ci95")},
    "methods/*/cov": (_R, "parameter", "parameter2"),
    "methods/*/cov_indep": (_R, "parameter", "parameter2"),
    "methods/*/sigma": (_R,),
    **{f"methods/*/diagnostics/{k}": (_R,) for k in
       ("converged", "n_iterations", "acceptance_fraction", "autocorr_time",
        "effective_samples", "rhat_max", "stop_reason", "hit_pole", "wall_time", "message",
        "penalty", "l1_ratio")},
    **{f"mle/{k}": (_R, "fit_model", "likelihood") for k in
       ("loglike", "converged", "hit_pole", "s", "g")},
    **{f"mle/{k}": (_R, "fit_model", "likelihood", "template") for k in
       ("a", "b", "a_err", "b_err", "a_err_indep", "b_err_indep")},
    "mle/cov": (_R, "fit_model", "likelihood", "parameter", "parameter2"),
    **{f"lrt/{k}": (_R, "lrt_pair", "likelihood") for k in
       ("statistic", "pvalue", "wald_statistic", "wald_pvalue")},
    "lrt/dof": (_R, "lrt_pair"),
    "lrt/wald_dof": (_R, "lrt_pair"),
    "jackknife/n_regions": (_R,),
    "jackknife/method_cov": (_R, "method", "parameter", "parameter2"),
    "jackknife/mle_a_err": (_R, "fit_model", "likelihood", "template"),
    "jackknife/mle_b_err": (_R, "fit_model", "likelihood", "template"),
    "timings/stage_seconds": (_R, "stage"),
    "timings/peak_memory_mb": (_R,),
}


def dims_for(relpath: str, ndim: int) -> tuple[str, ...]:
    """Axis names of a scenario dataset; ``index, axis1, ...`` if not listed."""
    parts = relpath.split("/")
    if len(parts) >= 3 and parts[0] == "methods":
        relpath = "/".join(("methods", "*", *parts[2:]))
    dims = DATASET_DIMS.get(relpath)
    if dims is not None and len(dims) == ndim:
        return dims
    return (REALISATION_AXIS, *(f"axis{i}" for i in range(1, ndim)))


def is_volatile(path: str) -> bool:
    """True for datasets that may differ between identical runs (see :data:`VOLATILE`)."""
    return any(v in path for v in VOLATILE)
