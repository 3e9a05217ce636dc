"""``hpcsys fit``: the six methods and the MLE/LRT fits on a user's own HEALPix maps.

Python API
----------
:func:`fit_files` reads FITS files (:func:`hpcsys.io.maps.load_user_maps`),
:func:`fit_maps` takes full-sky RING arrays; both validate the input
(:func:`hpcsys.io.degenerate.check_map_values` and
:func:`hpcsys.io.prepare.prepare_maps`: the handling of every kind of bad input
is tabulated there), run the chosen methods (:func:`hpcsys.methods.run_method`)
and the maximum-likelihood fits of every model in
:data:`hpcsys.core.models.FIT_MODELS` under each chosen likelihood
(:func:`hpcsys.core.fit.fit_mle`, Berlfein+24 Eqs. 17-18), and compute the
likelihood-ratio tests of :data:`hpcsys.core.models.LRT_PAIRS` (Berlfein+24
Eq. 19, Wilks chi-square p-values), all by
:func:`hpcsys.core.comparison.compare_models`, as the pipeline does.
:func:`hpcsys.io.fitfile.write_fit_result` stores a
:class:`FitResult` in HDF5 (and optionally one method's weights as a FITS
map); :func:`hpcsys.io.fitfile.read_fit_result` reads it back. The command
line is in :mod:`hpcsys.cli`.

Conventions
-----------
* Templates are standardised on the footprint (mean 0, std 1) before fitting,
  so coefficients are per standard deviation of each template; the raw means
  and standard deviations are in ``FitResult.map``.
* The MLE fits use the standardised templates directly: the maximum, the
  maximum log-likelihood and hence the LRT are invariant under the PCA
  rotation of Berlfein+24 App. A (a linear re-parametrisation); the methods
  apply ``methods.pca`` themselves.
* Fits run in float64 (a scoped ``jax.enable_x64`` context), whatever the
  caller's JAX setting.
* Randomness: method ``m`` (index in :data:`hpcsys.config.METHOD_NAMES`)
  draws from ``seed_sequence(seed, "method", 0, 0, m)``, the stream the
  pipeline gives method ``m`` of scenario 0, realisation 0, so a method's
  result does not depend on which other methods run.
* Errors and tests: ``a_err``, ``b_err``, ``cov`` of OLS and of every MLE
  fit, and ``pvalue`` of the test table, are the honest ones: the harmonic
  sandwich covariance (:mod:`hpcsys.measure.sandwich`, spectra of the
  residuals measured on the map itself, band ``methods.sandwich_lmax``) and
  the Wald test of the alternative's extra coefficients with it. They hold on
  a spatially correlated sky without mocks. The independent-pixel errors
  (inverse Hessian, ``s^2 (T T^T)^-1``) are ``a_err_indep``, ``b_err_indep``,
  ``cov_indep``, and the Wilks chi-square p-value of the likelihood ratio
  ``lambda`` is ``pvalue_indep``: on maps with large-scale structure they are
  too small (docs/correlated_pixels.rst). MCMC errors are the sandwich at the posterior maximum; ISD's as
  documented in :mod:`hpcsys.methods`; ElasticNet has none here.
* Everything is float64: ``lambda = 2 (lnL_alt - lnL_null)`` is the
  difference of the stored float64 maxima.
* MCMC chains are extended past ``methods.mcmc_steps`` until every
  parameter has ``methods.mcmc_ess_target`` effective samples and split-R-hat
  at most ``methods.mcmc_rhat_max``, or until ``methods.mcmc_max_steps``;
  ``diagnostics.stop_reason`` (printed) says which. Mock runs keep the fixed
  ``mcmc_steps`` of the cost model.

HDF5 layout (``format = "hpcsys-fit"``, ``format_version = 3``)
------------------------------------------------------------------
Written by :func:`hpcsys.io.fitfile.write_fit_result` with
:func:`hpcsys.io.serialize.write_dataclass` (arrays are datasets,
scalars and strings attributes, nested dataclasses groups):

* root attributes: ``format``, ``format_version``, ``created`` (ISO 8601 UTC),
  ``hpcsys_version``, ``seed``; dataset ``inputs`` (``role=path`` strings).
* ``/methods/<i>/`` for each method run, in order: attributes ``name``,
  ``model``, ``sigma``; datasets ``a, b, a_err, b_err, a_mean, b_mean, a_std,
  b_std, a_err_indep, b_err_indep, a_median, b_median, a_ess, b_ess`` (K),
  ``a_ci68, b_ci68, a_ci95, b_ci95`` (K, 2: lower, upper), ``cov``,
  ``cov_indep`` (2K, 2K), ``weights`` and ``corrected`` (footprint
  pixels, order of ``/map/pixels``); group ``diagnostics`` (attributes
  ``converged, n_iterations, acceptance_fraction, autocorr_time,
  effective_samples, rhat_max, stop_reason, hit_pole, wall_time, message,
  penalty, l1_ratio``).
* ``/mle/<j>/`` for each (model, likelihood), models outer: the fields of
  :class:`hpcsys.userfit_tables.MLEFit`: attributes ``model, likelihood, closed, s, g, loglike,
  converged, n_iter, hit_pole, status, decrement``; datasets
  ``theta`` (P), ``a, b, a_err, b_err, a_err_indep, b_err_indep`` (K),
  ``cov`` (2K, 2K: the sandwich covariance of ``(a, b)``, ``nan`` blocks
  where absent) and ``cov_indep`` (P, P: the inverse Hessian of ``theta``).
* ``/lrt/``: one row per (pair, likelihood): ``null_model, alt_model,
  likelihood`` (strings), ``dof``, ``statistic`` (lambda), ``pvalue_indep``
  (its Wilks p-value), ``wald_dof``, ``wald_statistic``, ``pvalue`` (the Wald
  p-value), ``converged`` (both fits converged without hitting the pole).
  (Version 2 held the inverse-Hessian errors as ``a_err``, ``b_err``,
  ``cov`` and the Wilks p-value as ``pvalue``.)
* ``/map/``: ``nside, n_pixels, n_sky_pixels, counts, n_input_templates,
  n_outside_mask, n_bad_map, n_bad_mask, mean_count`` (attributes);
  ``pixels``, ``template_names``, ``template_mean``, ``template_std``,
  ``n_bad_templates`` (per input template), ``input_template_names``,
  ``dropped``, ``dropped_reasons``, ``notes``.
* ``/settings/``: the ``methods:`` config section used.

The optional FITS weight map is full-sky RING, ``UNSEEN`` outside the
footprint, one column ``WEIGHT`` holding ``1/(1 + b.t_p)`` of the chosen
weighting method, with header keys ``HPCMETH`` (method), ``HPCSEED`` and
``HPCVERS``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hpcsys._version import __version__
from hpcsys.config import (
    METHOD_NAMES,
    Config,
    ConfigError,
    MethodsSection,
    apply_overrides,
)
from hpcsys.io.degenerate import check_map_values
from hpcsys.io.maps import MapInputError, load_user_maps
from hpcsys.io.prepare import PreparedMaps, prepare_maps
from hpcsys.seeds import seed_sequence
from hpcsys.userfit_tables import LRTTable, MLEFit, lrt_table, mle_fits

if TYPE_CHECKING:
    from hpcsys.methods.base import MethodResult

__all__ = [
    "FitResult",
    "LRTTable",
    "MLEFit",
    "MapSummary",
    "fit_files",
    "fit_maps",
    "fit_prepared",
    "fit_result_type",
    "method_seed",
]



# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MapSummary:
    """What was fitted: the footprint and the fate of every input pixel and template.

    Attributes
    ----------
    nside : int
    n_pixels : int
        Footprint pixels used.
    n_sky_pixels : int
        ``12 nside^2``.
    counts : bool
        The input was a counts map (converted to ``N / mean(N) - 1``).
    pixels : ndarray of int64, shape (n_pixels,)
        RING indices of the footprint pixels.
    template_names : tuple of str
        Templates fitted (K), in coefficient order.
    template_mean, template_std : ndarray, shape (K,)
        Raw footprint mean and standard deviation of each fitted template.
    input_template_names : tuple of str
        All input templates, before dropping.
    dropped, dropped_reasons : tuple of str
        Dropped templates and why (constant, duplicate, linear combination).
    n_input_templates, n_outside_mask, n_bad_map, n_bad_mask : int
        See :class:`hpcsys.io.prepare.PreparedMaps`.
    n_bad_templates : ndarray of int64, shape (n_input_templates,)
        NaN/inf/UNSEEN pixels inside the mask, per input template.
    mean_count : float
        Mean count per footprint pixel (``nan`` for an overdensity input).
    notes : tuple of str
        Everything done to the input (reordering, masking, dropping).
    """

    nside: int
    n_pixels: int
    n_sky_pixels: int
    counts: bool
    pixels: np.ndarray
    template_names: tuple[str, ...]
    template_mean: np.ndarray
    template_std: np.ndarray
    input_template_names: tuple[str, ...]
    dropped: tuple[str, ...]
    dropped_reasons: tuple[str, ...]
    n_input_templates: int
    n_outside_mask: int
    n_bad_map: int
    n_bad_mask: int
    n_bad_templates: np.ndarray
    mean_count: float
    notes: tuple[str, ...]


@dataclass(frozen=True)
class FitResult:
    """Everything ``hpcsys fit`` measured on one set of user maps.

    Attributes
    ----------
    methods : tuple of MethodResult
        One per method run, in ``settings.names`` order.
    mle : tuple of MLEFit
        One per (model, likelihood): models of :data:`~hpcsys.core.models.FIT_MODELS`
        outer, ``settings.likelihoods`` inner.
    lrt : LRTTable
    map : MapSummary
    settings : MethodsSection
        The ``methods:`` settings used (names and likelihoods included).
    seed : int
        Master seed of the method streams (see :func:`method_seed`).
    inputs : tuple of str
        ``role=path`` of each input file (empty for array input).
    hpcsys_version : str
    """

    methods: tuple[MethodResult, ...]
    mle: tuple[MLEFit, ...]
    lrt: LRTTable
    map: MapSummary
    settings: MethodsSection
    seed: int
    inputs: tuple[str, ...]
    hpcsys_version: str

    def method(self, name: str) -> MethodResult:
        """The result of method ``name``."""
        for r in self.methods:
            if r.name == name:
                return r
        raise KeyError(f"method {name!r} was not run; ran {', '.join(r.name for r in self.methods)}")

    def mle_fit(self, model: str, likelihood: str) -> MLEFit:
        """The maximum-likelihood fit of ``model`` under ``likelihood``."""
        for r in self.mle:
            if r.model == model and r.likelihood == likelihood:
                return r
        raise KeyError(f"no MLE fit of ({model!r}, {likelihood!r})")


# --------------------------------------------------------------------------- fitting


def _bind_method_result() -> None:
    """Import :class:`~hpcsys.methods.base.MethodResult` on first use.

    :mod:`hpcsys.methods` imports JAX, and the ``hpcsys`` parser imports this
    module before the run's threads and devices are configured, so the import
    waits until a fit runs or a result is read; binding the name here lets
    ``typing.get_type_hints(FitResult)`` (used to read results back) resolve it.
    """
    from hpcsys.methods.base import MethodResult

    globals()["MethodResult"] = MethodResult


def method_seed(seed: int, name: str) -> np.random.SeedSequence:
    """Seed of method ``name``: ``seed_sequence(seed, "method", 0, 0, index)``.

    ``index`` is the method's position in :data:`hpcsys.config.METHOD_NAMES`,
    so each method's stream is fixed whatever else runs.
    """
    return seed_sequence(seed, "method", 0, 0, METHOD_NAMES.index(name))


def _resolve_settings(
    settings: MethodsSection | None,
    methods: Sequence[str] | None,
    likelihoods: Sequence[str] | None,
) -> MethodsSection:
    """Apply method/likelihood choices to ``settings`` and validate the result."""
    cfg = Config() if settings is None else Config(methods=settings)
    overrides = []
    if methods is not None:
        overrides.append(f"methods.names=[{', '.join(repr(str(m)) for m in methods)}]")
    if likelihoods is not None:
        overrides.append(f"methods.likelihoods=[{', '.join(repr(str(x)) for x in likelihoods)}]")
    return apply_overrides(cfg, overrides, mock_run=False).methods


def fit_prepared(
    prepared: PreparedMaps,
    *,
    methods: Sequence[str] | None = None,
    likelihoods: Sequence[str] | None = None,
    settings: MethodsSection | None = None,
    seed: int = 0,
    inputs: Sequence[str] = (),
    input_template_names: Sequence[str] | None = None,
) -> FitResult:
    """Run the methods, MLE fits and LRTs on validated footprint maps.

    Parameters
    ----------
    prepared : PreparedMaps
        From :func:`hpcsys.io.prepare.prepare_maps`.
    methods, likelihoods : sequence of str, optional
        Override ``settings.names`` / ``settings.likelihoods``.
    settings : MethodsSection, optional
        Method settings (default: the config defaults).
    seed : int
        Master seed of the method streams (:func:`method_seed`).
    inputs : sequence of str
        ``role=path`` provenance strings.
    input_template_names : sequence of str, optional
        Names of all input templates (default: kept plus dropped).

    Returns
    -------
    FitResult

    Raises
    ------
    MapInputError
        The footprint has no more pixels than the largest model has parameters.
    ConfigError
        Unknown method or likelihood, invalid settings or a negative seed.
    """
    import jax

    from hpcsys.core.comparison import compare_models
    from hpcsys.core.likelihood import n_params
    from hpcsys.core.models import FIT_MODELS
    from hpcsys.measure.honest import mle_covariances, sandwich_setup
    from hpcsys.methods import MapData, run_method

    _bind_method_result()
    settings = _resolve_settings(settings, methods, likelihoods)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed: must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    K, n = prepared.n_templates, prepared.n_pixels
    p_max, worst = max(
        (n_params(m, lik, K), f"{m} model, {lik} likelihood")
        for m in FIT_MODELS
        for lik in settings.likelihoods
    )
    if n <= p_max:
        raise MapInputError(
            f"footprint: {n} usable pixels, not more than the {p_max} parameters of the "
            f"{worst} with K = {K} templates"
        )
    templates = np.asarray(prepared.templates, dtype=float)
    setup = sandwich_setup(prepared.pixels, prepared.nside, settings.sandwich_lmax, templates)
    data = MapData(
        delta=prepared.delta,
        templates=templates,
        pixels=prepared.pixels,
        nside=prepared.nside,
        names=prepared.names,
        sandwich=setup,
    )
    with jax.enable_x64(True):
        # the comparison first: the MCMC methods reuse its Gaussian sandwich covariances
        comparison = compare_models(data.delta, data.templates, settings.likelihoods,
                                    max_iter=settings.mle_max_iter, tol=settings.mle_tol,
                                    covariance=mle_covariances(setup, data.delta, templates))
        data = dataclasses.replace(data, comparison=comparison)
        results = tuple(
            run_method(name, data, settings, method_seed(seed, name), extend_chains=True)
            for name in settings.names
        )
    lrt = lrt_table(comparison)
    names_in = (
        tuple(input_template_names)
        if input_template_names is not None
        else prepared.names + prepared.dropped
    )
    summary = MapSummary(
        nside=prepared.nside,
        n_pixels=n,
        n_sky_pixels=12 * prepared.nside**2,
        counts=bool(np.isfinite(prepared.mean_count)),
        pixels=prepared.pixels,
        template_names=prepared.names,
        template_mean=prepared.template_mean,
        template_std=prepared.template_std,
        input_template_names=names_in,
        dropped=prepared.dropped,
        dropped_reasons=prepared.dropped_reasons,
        n_input_templates=prepared.n_input_templates,
        n_outside_mask=prepared.n_outside_mask,
        n_bad_map=prepared.n_bad_map,
        n_bad_mask=prepared.n_bad_mask,
        n_bad_templates=prepared.n_bad_templates,
        mean_count=prepared.mean_count,
        notes=prepared.notes,
    )
    return FitResult(
        methods=results,
        mle=mle_fits(comparison),
        lrt=lrt,
        map=summary,
        settings=settings,
        seed=seed,
        inputs=tuple(inputs),
        hpcsys_version=__version__,
    )


def fit_maps(
    delta_or_counts: np.ndarray,
    templates: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    counts: bool = False,
    names: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    likelihoods: Sequence[str] | None = None,
    settings: MethodsSection | None = None,
    seed: int = 0,
) -> FitResult:
    """Fit full-sky RING arrays: validate, run the methods, MLE fits and LRTs.

    Parameters
    ----------
    delta_or_counts : ndarray, shape (12 nside^2,)
        Observed overdensity, or galaxy counts with ``counts=True``.
    templates : ndarray, shape (K, 12 nside^2)
        Raw template maps (standardised on the footprint here).
    mask : ndarray, shape (12 nside^2,), optional
        ``> 0`` is observed; required with ``counts``.
    counts : bool
        Convert counts to ``N / mean(N) - 1`` on the footprint.
    names : sequence of str, optional
        Template names (default ``t0, t1, ...``).
    methods, likelihoods : sequence of str, optional
        Methods and likelihoods to run (default: those of ``settings``).
    settings : MethodsSection, optional
    seed : int

    Returns
    -------
    FitResult

    Raises
    ------
    MapInputError, ConfigError
        Bad maps (see :mod:`hpcsys.io.maps`) or bad settings.
    """
    notes = check_map_values(delta_or_counts, templates, mask, counts=counts,
                             map_label="delta_or_counts", template_labels=names)
    prepared = prepare_maps(
        delta_or_counts, templates, mask, counts=counts, names=names,
        map_label="delta_or_counts", mask_label="mask",
    )
    prepared = dataclasses.replace(prepared, notes=notes + prepared.notes)
    return fit_prepared(
        prepared, methods=methods, likelihoods=likelihoods, settings=settings, seed=seed,
        input_template_names=None if names is None else tuple(names),
    )


def fit_files(
    map_path: str | Path,
    template_paths: Sequence[str | Path],
    *,
    mask_path: str | Path | None = None,
    counts: bool = False,
    methods: Sequence[str] | None = None,
    likelihoods: Sequence[str] | None = None,
    settings: MethodsSection | None = None,
    seed: int = 0,
) -> FitResult:
    """Fit HEALPix FITS files: :func:`~hpcsys.io.maps.load_user_maps` then :func:`fit_prepared`.

    Parameters are those of :func:`fit_maps` with file paths for the maps;
    a multi-column template file contributes one template per column.
    """
    um = load_user_maps(map_path, template_paths, mask_path=mask_path, counts=counts)
    notes = check_map_values(um.map, um.templates, um.mask, counts=counts,
                             map_label=um.map_label, template_labels=um.template_labels)
    prepared = prepare_maps(
        um.map, um.templates, um.mask, counts=counts, names=um.names,
        map_label=um.map_label, mask_label=um.mask_label or "mask",
        template_labels=um.template_labels,
    )
    prepared = dataclasses.replace(prepared, notes=um.notes + notes + prepared.notes)
    inputs = [f"{'counts' if counts else 'map'}={map_path}"]
    inputs += [f"template={p}" for p in template_paths]
    if mask_path is not None:
        inputs.append(f"mask={mask_path}")
    return fit_prepared(
        prepared, methods=methods, likelihoods=likelihoods, settings=settings, seed=seed,
        inputs=inputs, input_template_names=um.names,
    )


def fit_result_type() -> type[FitResult]:
    """:class:`FitResult`, its annotations resolvable (for :func:`hpcsys.io.fitfile.read_fit_result`)."""
    _bind_method_result()
    return FitResult
