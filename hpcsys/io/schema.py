"""Layout of the aggregated results file ``RUN_DIR/results.h5`` (schema version 1).

One HDF5 file per run, written by rank 0 only (no parallel HDF5), atomically
(temporary name, then :func:`os.replace`). Read it with
:func:`hpcsys.io.open_results`; the layout below is the contract. Every
dataset carries an attribute ``dims`` naming its axes (comma separated); the
labels of each named axis are in ``/coords``.

Root attributes (provenance)
----------------------------
``schema_version`` (int), ``hpcsys_version``, ``git_hash`` ('' if unknown),
``config_text`` (the resolved YAML), ``config_source``, ``master_seed``,
``created`` (ISO 8601 UTC), ``n_ranks``, ``hosts`` and ``devices`` (string
arrays: where the tasks ran), ``n_tasks``.

Groups and datasets
-------------------
``/coords/<axis>``
    String labels of each named axis: ``scenario``, ``method``, ``likelihood``,
    ``fit_model``, ``lrt_pair`` (``"null_model/alt_model"``), ``stage``,
    ``template``, ``estimator`` (``uncorrected`` then the methods),
    ``parameter`` (``a_0 .. a_{K-1}, b_0 .. b_{K-1}``).
``/theta_arcmin`` (bin)
    Bin centres of w(theta), identical for all tasks.
``/templates/``
    ``names`` (template), ``correlation`` (template, template) and ``xi`` (bin,
    template, template; absent when templates are redrawn): template names, their
    correlation matrix on the footprint, and the template auto- and
    cross-correlation functions xi_ij(theta) used in Berlfein+24 Eq. 16.
``/scenarios/<scenario>/``
    Per-realisation results stacked along axis 0 (``realisation``), sorted by
    realisation index:

    ``index`` (realisation), ``seed_words`` (realisation, word),
    ``a_true``, ``b_true`` (realisation, template),
    ``w_true``, ``w_obs`` (realisation, bin),
    ``w_corrected``, ``w_corrected_diag``, ``w_remeasured`` (realisation, method, bin);

    ``methods/<name>/`` with attribute ``model`` and datasets
    ``a, b, a_err, b_err, a_mean, b_mean, a_std, b_std`` (realisation, template),
    ``cov`` (realisation, parameter, parameter), ``sigma``, ``converged``,
    ``n_iterations``, ``acceptance_fraction``, ``autocorr_time``,
    ``effective_samples``, ``hit_pole``, ``wall_time``, ``message`` (realisation).
    Per-pixel maps (weights, corrected map) stay in the per-task files.

    ``mle/``: ``loglike, converged, hit_pole, s, g`` (realisation, fit_model,
    likelihood) and ``a, b, a_err, b_err`` (realisation, fit_model, likelihood,
    template).

    ``lrt/``: ``lambda, pvalue`` (realisation, lrt_pair, likelihood), ``dof``
    (realisation, lrt_pair): Berlfein+24 Eq. 19 and its Wilks p-value.

    ``timings/``: ``stage_seconds`` (realisation, stage), ``peak_memory_mb``
    (realisation).
``/tables/table2/``
    Rejection fraction of each null model (Berlfein+24 Table 2): see
    :class:`hpcsys.io.tables.Table2`.
``/tables/table3/``
    Amplitude bias dA/sigma_A (Berlfein+24 Table 3, Eqs. 25-26): see
    :class:`hpcsys.io.tables.Table3`.
``/tables/recovery/``
    Parameter recovery per method: see :class:`hpcsys.io.tables.RecoveryTable`.
"""

from __future__ import annotations

__all__ = ["DATASET_DIMS", "SCHEMA_VERSION", "SKIPPED_FIELDS", "VOLATILE", "dims_for", "is_volatile"]

#: Version of the layout; bump on any incompatible change.
SCHEMA_VERSION: int = 1

#: Per-pixel fields that stay in per-task files and are not aggregated.
SKIPPED_FIELDS: frozenset[str] = frozenset({"weights", "corrected"})

#: Path fragments of datasets that legitimately differ between two runs of the same
#: configuration (wall times, free-text messages that quote them); everything else is
#: bit-for-bit reproducible whatever the number of ranks.
VOLATILE: tuple[str, ...] = ("timings/", "/wall_time", "/message")

#: Axis names of the datasets under ``/scenarios/<scenario>/``, by path relative to
#: the scenario group (``*`` matches one method name).
DATASET_DIMS: dict[str, tuple[str, ...]] = {
    "index": ("realisation",),
    "seed_words": ("realisation", "word"),
    "a_true": ("realisation", "template"),
    "b_true": ("realisation", "template"),
    "w_true": ("realisation", "bin"),
    "w_obs": ("realisation", "bin"),
    "w_corrected": ("realisation", "method", "bin"),
    "w_corrected_diag": ("realisation", "method", "bin"),
    "w_remeasured": ("realisation", "method", "bin"),
    **{f"methods/*/{k}": ("realisation", "template") for k in
       ("a", "b", "a_err", "b_err", "a_mean", "b_mean", "a_std", "b_std")},
    "methods/*/cov": ("realisation", "parameter", "parameter"),
    **{f"methods/*/{k}": ("realisation",) for k in
       ("sigma", "converged", "n_iterations", "acceptance_fraction", "autocorr_time",
        "effective_samples", "hit_pole", "wall_time", "message")},
    **{f"mle/{k}": ("realisation", "fit_model", "likelihood") for k in
       ("loglike", "converged", "hit_pole", "s", "g")},
    **{f"mle/{k}": ("realisation", "fit_model", "likelihood", "template") for k in
       ("a", "b", "a_err", "b_err")},
    "lrt/lambda": ("realisation", "lrt_pair", "likelihood"),
    "lrt/pvalue": ("realisation", "lrt_pair", "likelihood"),
    "lrt/dof": ("realisation", "lrt_pair"),
    "timings/stage_seconds": ("realisation", "stage"),
    "timings/peak_memory_mb": ("realisation",),
}


def dims_for(relpath: str, ndim: int) -> tuple[str, ...]:
    """Axis names of a scenario dataset; generic ``realisation, axis1, ...`` if not listed."""
    parts = relpath.split("/")
    if len(parts) == 3 and parts[0] == "methods":
        relpath = f"methods/*/{parts[2]}"
    dims = DATASET_DIMS.get(relpath)
    if dims is not None and len(dims) == ndim:
        return dims
    return ("realisation", *(f"axis{i}" for i in range(1, ndim)))


def is_volatile(path: str) -> bool:
    """True for datasets that may differ between identical runs (see :data:`VOLATILE`)."""
    return any(v in path for v in VOLATILE)
