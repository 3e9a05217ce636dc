"""Run configuration: one typed schema that validates, supplies defaults and documents.

Every tunable of a run lives here, once. Each section of a YAML config file maps
to a frozen dataclass below; each field carries its default, a one-line doc
string and an optional check in its metadata, so the same table drives

* loading and validation (:func:`load_config`, :func:`parse_config`),
* command-line overrides (``--set sky.nside=128``, :func:`apply_overrides`),
* the configuration reference in the documentation (:func:`config_reference`).

A bad value raises :class:`ConfigError` with one line naming the dotted key,
e.g. ``sky.nside: must be a power of two, got 100``.

Close to a leaf: the only imports from :mod:`hpcsys` are its building blocks
(``hpcsys._config_checks``) and the pure-Python model vocabulary of
:mod:`hpcsys.core.models` (scenarios and likelihoods are validated
against it; it does not import JAX).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hpcsys._config_checks import (
    ConfigError,
    UniqueKeyLoader,
    _at_least,
    _build_section,
    _fraction,
    _greater_than,
    _non_negative,
    _one_of,
    _open_unit,
    _optional,
    _param,
    _positive,
    _power_of_two,
    _subset_of,
)
from hpcsys._config_cross import _cross_checks
from hpcsys.core.models import LIKELIHOODS, SCENARIOS

__all__ = [
    "LIKELIHOODS",
    "METHOD_NAMES",
    "REMEASURED_METHODS",
    "SCENARIOS",
    "TEMPLATE_FAMILIES",
    "WEIGHT_MAP_METHODS",
    "Config",
    "ConfigError",
    "apply_overrides",
    "config_reference",
    "load_config",
    "parse_config",
]

#: The six decontamination methods of Berlfein+24 Section 3, in table order.
METHOD_NAMES: tuple[str, ...] = ("OLS", "ElasticNet", "ISD-1", "ISD-3", "MCMC-add", "MCMC-comb")
#: Methods whose correction is a weighted map, not coefficients for Berlfein+24 Eq. 16:
#: the pipeline's corrected w(theta) for them is the re-measured w of the weighted map.
REMEASURED_METHODS: tuple[str, ...] = ("ISD-1", "ISD-3")
#: Methods with a multiplicative term, whose per-pixel weights ``1/(1 + b.t_p)`` the
#: ``hpcsys fit`` command can write as a FITS weight map.
WEIGHT_MAP_METHODS: tuple[str, ...] = ("ISD-1", "ISD-3", "MCMC-comb")
#: Template spectral families (docs/science/conventions.rst).
TEMPLATE_FAMILIES: tuple[str, ...] = ("exp", "gauss", "power2", "power1", "white")


# --------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class RunSection:
    """``run:`` — identity, size and reproducibility of a run."""

    name: str = _param("hpcsys", "Run name, used in output file names.")
    output_dir: str = _param(
        "runs/{name}", "Output directory; ``{name}`` is replaced by ``run.name``."
    )
    master_seed: int = _param(
        20240124,
        "Master seed. Every random stream derives from it and a task index "
        "(SeedSequence spawn keys), never from the MPI rank.",
        _non_negative,
    )
    n_realisations: int = _param(8, "Mock realisations per scenario.", _at_least(1))
    scenarios: tuple[str, ...] = _param(
        SCENARIOS, "Contamination scenarios to simulate.", _subset_of(SCENARIOS)
    )
    precision: str = _param(
        "float64",
        "Floating-point precision of the JAX core, switched on by the entry point. Only "
        "``float64``: the maximum-likelihood fits cannot reach their convergence tolerance "
        "and the likelihood-ratio statistics are quantised in float32 "
        "(docs/science/conventions.rst, Precision).",
        _one_of("float64"),
    )


@dataclass(frozen=True)
class SkySection:
    """``sky:`` — HEALPix grid, footprint, true field and galaxy counts (docs/science/conventions.rst)."""

    nside: int = _param(64, "HEALPix NSIDE (RING ordering).", _power_of_two)
    footprint: str = _param(
        "kids",
        "Footprint: ``kids`` (KiDS-1000-like strips), ``full``, ``cap`` or ``file``.",
        _one_of("kids", "full", "cap", "file"),
    )
    cap_radius_deg: float = _param(
        30.0,
        "Radius of the ``cap`` footprint in degrees.",
        lambda v: None if 0 < v <= 180 else f"must be in (0, 180], got {v}",
    )
    mask_file: str | None = _param(
        None, "HEALPix FITS mask (non-zero = observed) for ``footprint: file``."
    )
    spectrum: str = _param(
        "kids",
        "Target galaxy C_l: ``kids`` (tabulated, shipped with hpcsys) or a path to a "
        "two-column text file (ell, C_ell).",
    )
    galaxy_bias: float = _param(
        1.5,
        "Linear galaxy bias b; the target C_l is b^2 times the unit-bias table "
        "(1.5: typical of KiDS-like photometric galaxies at z ~ 0.7).",
        _positive,
    )
    number_density: float = _param(
        1.0, "Mean galaxy number density in galaxies per arcmin^2.", _positive
    )
    shot_noise: bool = _param(True, "Draw Poisson galaxy counts (else use the field itself).")


@dataclass(frozen=True)
class TemplatesSection:
    """``templates:`` — systematic template maps (docs/science/conventions.rst)."""

    n_templates: int = _param(5, "Number of templates K.", _at_least(1))
    families: tuple[str, ...] = _param(
        TEMPLATE_FAMILIES,
        "Spectral families assigned to templates in turn (cycled over K).",
        _subset_of(TEMPLATE_FAMILIES),
    )
    ell_scale: float = _param(
        1.0,
        "Multiplies the characteristic multipoles of the exp (500) and gauss (250) "
        "families. Below NSIDE 512 they lie near or beyond the band limit 3 NSIDE and the "
        "two families look like pixel noise; NSIDE/512 keeps the shape they have at "
        "NSIDE 512 (hpcsys.sims.spectra.large_scale_fraction).",
        _positive,
    )
    correlation: float = _param(
        0.3,
        "Uniform correlation coefficient between template pairs (ignored when "
        "``correlation_matrix`` is given).",
        lambda v: None if -1 < v < 1 else f"must be in (-1, 1), got {v}",
    )
    correlation_matrix: tuple[tuple[float, ...], ...] | None = _param(
        None, "Explicit K x K template correlation matrix (symmetric, positive definite)."
    )
    redraw: bool = _param(
        False, "Redraw templates in every realisation (default: fixed, as in a survey)."
    )


@dataclass(frozen=True)
class ContaminationSection:
    """``contamination:`` — true (a, b) of Berlfein+24 Eqs. 11-13 (docs/science/models.rst)."""

    additive_amplitude: float = _param(
        0.0095,
        "RMS of the non-zero additive coefficients a_i (calibrated: see hpcsys.sims.truth).",
        _non_negative,
    )
    multiplicative_amplitude: float = _param(
        0.05,
        "RMS of the non-zero multiplicative coefficients b_i (kept well away from the pole "
        "1 + b.t = 0; see hpcsys.sims.truth).",
        _non_negative,
    )
    zero_fraction: float = _param(
        0.4, "Fraction of coefficients set exactly to zero.", _fraction
    )


@dataclass(frozen=True)
class MethodsSection:
    """``methods:`` — the six estimators and the MLE fits (docs/methods.rst)."""

    names: tuple[str, ...] = _param(
        METHOD_NAMES, "Methods to run, by name.", _subset_of(METHOD_NAMES)
    )
    likelihoods: tuple[str, ...] = _param(
        LIKELIHOODS, "Likelihoods for the MLE fits and the LRT.", _subset_of(LIKELIHOODS)
    )
    pca: bool = _param(True, "Fit in the PCA-rotated template basis (Berlfein+24 App. A).")
    mle_max_iter: int = _param(200, "Maximum Newton iterations of an MLE fit.", _at_least(1))
    mle_tol: float = _param(1e-9, "Convergence tolerance on the Newton decrement.", _positive)
    jackknife_regions: int = _param(
        40,
        "Regions of the delete-one-region spatial jackknife of every method and MLE fit "
        "(k-means patches of the footprint, stream 'jackknife'); 0 turns it off.",
        lambda v: None if v == 0 or v >= 2 else f"must be 0 (off) or at least 2, got {v}",
    )
    jackknife_isd: bool = _param(
        False,
        "Include ISD-1/-3 in the jackknife: each deletion reruns the whole method, its "
        "harmonic binned-mean errors included, on a new footprint (tens of CPU s per region "
        "at paper size); off: their jackknife covariance is nan.",
    )
    sandwich_lmax: int | None = _param(
        512,
        "Multipoles treated exactly by the harmonic sandwich covariance (the honest errors and "
        "Wald tests; capped at 3 NSIDE - 1, null: all); above it the residual spectra are "
        "taken as white (docs/correlated_pixels.rst).",
        _optional(_at_least(1)),
    )
    isd_threshold: float = _param(
        3.0,
        "ISD stops when no template's 1-D fit improves chi^2 by more than threshold^2 "
        "(i.e. 'threshold' sigma).",
        _positive,
    )
    isd_max_iter: int = _param(50, "Maximum ISD iterations.", _at_least(1))
    isd_errors: str = _param(
        "harmonic",
        "Errors of the ISD binned means: ``harmonic`` (their covariance from the residual map's "
        "own spectrum, docs/methods.rst) or ``independent`` (std/sqrt(n), pixels independent).",
        _one_of("harmonic", "independent"),
    )
    isd_lmax: int | None = _param(
        512, "Largest multipole treated exactly by the harmonic ISD errors (white above it; "
        "capped at 3 NSIDE - 1, null: all), the band of methods.sandwich_lmax. Cost and "
        "memory scale as lmax^2: at NSIDE 512, K = 25 the whole band (1535) takes about "
        "150 CPU s and 5 GB per rank, 512 about a ninth (docs/methods.rst).",
        _optional(_at_least(1)))
    isd_n_bins: int = _param(
        10, "Equal-count template bins of the ISD 1-D fits (>= 5 for ISD-3).", _at_least(5)
    )
    elasticnet_folds: int = _param(5, "Cross-validation folds (grouped by sky patch).", _at_least(2))
    elasticnet_l1_ratio: tuple[float, ...] = _param(
        (0.1, 0.5, 0.9, 1.0), "l1/(l1+l2) mixing ratios scanned by cross-validation."
    )
    elasticnet_patch_nside: int = _param(
        4, "NSIDE of the sky patches that define the CV groups.", _power_of_two
    )
    elasticnet_precompute: bool = _param(
        True, "ElasticNet coordinate descent on the K x K Gram matrix in every fold and in the "
        "final fit (False: scikit-learn's 'auto', the full design for the final fit)."
    )
    mcmc_backend: str = _param(
        "emcee",
        "Ensemble sampler: ``emcee`` (reference) or ``jax`` (device-resident AIES).",
        _one_of("emcee", "jax"),
    )
    mcmc_walkers: int = _param(64, "Walkers of the ensemble sampler.", _at_least(4))
    mcmc_steps: int = _param(600, "Steps per walker (including burn-in).", _at_least(2))
    mcmc_burn_in: int = _param(200, "Burn-in steps discarded.", _non_negative)
    mcmc_thin: int = _param(1, "Thinning of the stored chain.", _at_least(1))
    mcmc_ess_target: float = _param(
        400.0, "Effective samples per parameter (the smallest over parameters) a chain needs to "
        "count as converged; ``hpcsys fit`` extends its chains until it is met.", _positive)
    mcmc_rhat_max: float = _param(
        1.01, "Largest split-R-hat (over walker halves and chain halves) of a converged chain.",
        _greater_than(1.0))
    mcmc_max_steps: int = _param(
        20000, "Step cap (burn-in included) of the chain extension of ``hpcsys fit``; mock runs "
        "always run ``mcmc_steps``.", _at_least(2))


@dataclass(frozen=True)
class TwoPointSection:
    """``twopoint:`` — w(theta) with TreeCorr (docs/science/tables.rst)."""

    theta_min_arcmin: float | None = _param(
        None, "Smallest bin edge in arcmin (default: two pixel sizes).", _optional(_positive)
    )
    theta_max_arcmin: float = _param(300.0, "Largest bin edge in arcmin.", _positive)
    n_bins: int = _param(12, "Number of logarithmic bins.", _at_least(2))
    bin_slop: float = _param(0.1, "TreeCorr bin_slop.", _non_negative)
    n_threads: int | None = _param(
        None,
        "TreeCorr threads per rank (default 1: bit-reproducible w; with more threads the "
        "OpenMP reduction order varies and w changes at the 1e-16 relative level).",
        _optional(_at_least(1)),
    )


@dataclass(frozen=True)
class AnalysisSection:
    """``analysis:`` — reduction over realisations (Berlfein+24 Eqs. 19-26; docs/science/tables.rst)."""

    alpha: float = _param(0.05, "Significance level of the likelihood-ratio tests.", _open_unit)
    calibration_realisations: int = _param(
        0,
        "Null mocks M of the calibration set of Table 2 (own random streams, disjoint from "
        "the evaluated realisations; hpcsys.calibration). The calibrated p-value is "
        "(1 + #{lambda_cal >= lambda}) / (1 + M), so M >= 1/alpha - 1 is needed to reject "
        "at all. 0: no calibration set, the calibrated columns are nan.",
        _at_least(0),
    )


@dataclass(frozen=True)
class ParallelSection:
    """``parallel:`` — MPI task distribution and per-rank resources."""

    distribution: str = _param(
        "dynamic",
        "Task distribution: ``dynamic`` (rank-0 queue) or ``cyclic`` (static).",
        _one_of("dynamic", "cyclic"),
    )
    threads_per_rank: int | None = _param(
        None,
        "CPU threads per rank for XLA/OpenMP/TreeCorr (default: cores / ranks on the node).",
        _optional(_at_least(1)),
    )
    gpu_memory_fraction: float | None = _param(
        None,
        "XLA memory fraction per rank when ranks share a GPU (default: 1/ranks per GPU).",
        _optional(_open_unit),
    )
    bind_cores: bool = _param(
        True,
        "Pin each rank to its own cores when the launcher did not bind it already.",
    )
    progress_interval_s: float = _param(
        30.0, "Seconds between progress log lines when output is not a terminal.", _positive
    )
    compilation_cache_dir: str | None = _param(
        None,
        "JAX persistent compilation cache shared by all ranks and runs (e.g. "
        "``runs/.jax_cache``); later processes load compiled kernels instead of "
        "recompiling them (minutes at start-up). ``None``: off.",
    )


_SECTIONS: dict[str, type] = {
    "run": RunSection,
    "sky": SkySection,
    "templates": TemplatesSection,
    "contamination": ContaminationSection,
    "methods": MethodsSection,
    "twopoint": TwoPointSection,
    "analysis": AnalysisSection,
    "parallel": ParallelSection,
}


@dataclass(frozen=True)
class Config:
    """A validated run configuration.

    Attributes are the sections; ``text`` is the YAML the run was built from
    (after overrides), stored verbatim in every output for provenance.
    """

    run: RunSection = field(default_factory=RunSection)
    sky: SkySection = field(default_factory=SkySection)
    templates: TemplatesSection = field(default_factory=TemplatesSection)
    contamination: ContaminationSection = field(default_factory=ContaminationSection)
    methods: MethodsSection = field(default_factory=MethodsSection)
    twopoint: TwoPointSection = field(default_factory=TwoPointSection)
    analysis: AnalysisSection = field(default_factory=AnalysisSection)
    parallel: ParallelSection = field(default_factory=ParallelSection)
    source: str = "<defaults>"

    @property
    def output_dir(self) -> Path:
        """The run directory with ``{name}`` substituted."""
        return Path(self.run.output_dir.format(name=self.run.name))

    @property
    def n_templates(self) -> int:
        """Number of templates K."""
        return self.templates.n_templates

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dictionary (lists for tuples), suitable for YAML."""
        out: dict[str, dict[str, Any]] = {}
        for name in _SECTIONS:
            sec = getattr(self, name)
            out[name] = {f.name: _plain(getattr(sec, f.name)) for f in dataclasses.fields(sec)}
        return out

    @property
    def text(self) -> str:
        """The full resolved configuration as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **overrides: Any) -> Config:
        """Return a copy with dotted-key overrides, e.g. ``replace(**{"sky.nside": 32})``."""
        return apply_overrides(self, [f"{k}={yaml.safe_dump(_plain(v)).strip()}" for k, v in
                                      overrides.items()])


def _plain(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def parse_config(
    raw: Mapping[str, Any] | None, source: str = "<dict>", *, mock_run: bool = True
) -> Config:
    """Validate a nested mapping (as read from YAML) into a :class:`Config`.

    Parameters
    ----------
    raw : mapping or None
        ``{section: {key: value}}``; missing keys take their defaults.
    source : str
        Where the mapping came from (a file name), for messages and provenance.
    mock_run : bool
        Also check what ties the methods to the mock templates (walkers per
        MCMC dimension at ``templates.n_templates``); ``False`` for user maps.

    Raises
    ------
    ConfigError
        One line naming the offending dotted key.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: unknown section; valid sections are {', '.join(_SECTIONS)}"
        )
    sections = {name: _build_section(name, cls, raw.get(name)) for name, cls in _SECTIONS.items()}
    cfg = Config(**sections, source=source)
    _cross_checks(cfg, mock_run)
    return cfg


def _read_yaml(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at line "
                          f"{line}); save the config as UTF-8") from None
    if not text.strip() or all(ln.lstrip().startswith("#") or not ln.strip()
                               for ln in text.splitlines()):
        raise ConfigError(f"{path}: empty config file (nothing but blanks and comments); "
                          f"write '{{}}' to run with every default")
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: {exc.problem}{where}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None


def load_config(
    path: str | Path, overrides: list[str] | tuple[str, ...] = (), *, mock_run: bool = True
) -> Config:
    """Read, override and validate a YAML run configuration.

    Parameters
    ----------
    path : str or Path
        YAML file with the sections of :class:`Config`.
    overrides : list of str
        ``"section.key=value"`` strings; values are parsed as YAML.
    mock_run : bool
        See :func:`parse_config`.

    Returns
    -------
    Config
    """
    path = Path(path)
    raw = _read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    _merge_overrides(raw, overrides)
    return parse_config(raw, source=str(path), mock_run=mock_run)


def _merge_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> None:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item}: expected section.key=value")
        key, _, value = item.partition("=")
        parts = key.strip().split(".")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"--set {key}: expected section.key=value")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"{key}: cannot parse override value {value!r}") from None
        sec = raw.setdefault(parts[0], {})
        if not isinstance(sec, dict):
            raise ConfigError(f"{parts[0]}: expected a mapping of keys")
        sec[parts[1]] = parsed


def apply_overrides(
    cfg: Config, overrides: list[str] | tuple[str, ...], *, mock_run: bool = True
) -> Config:
    """Return ``cfg`` with ``section.key=value`` overrides applied and re-validated."""
    raw = cfg.to_dict()
    _merge_overrides(raw, overrides)
    return parse_config(raw, source=cfg.source, mock_run=mock_run)


def config_reference() -> str:
    """reStructuredText tables of every section, key, type, default and meaning."""
    lines = []
    for name, cls in _SECTIONS.items():
        hints = typing.get_type_hints(cls)
        title = f"``{name}``"
        lines += [title, "~" * len(title), "", (cls.__doc__ or "").strip(), ""]
        lines += [".. list-table::", "   :header-rows: 1", "   :widths: 20 15 15 50", ""]
        lines += ["   * - key", "     - type", "     - default", "     - meaning"]
        for f in dataclasses.fields(cls):
            tp = str(hints[f.name]).replace("typing.", "").replace("<class '", "")
            tp = tp.replace("'>", "")
            default = yaml.safe_dump(_plain(f.default), default_flow_style=True).strip()
            default = default.removesuffix("...").strip()
            lines += [
                f"   * - ``{f.name}``",
                f"     - ``{tp}``",
                f"     - ``{default}``",
                f"     - {f.metadata['doc']}",
            ]
        lines.append("")
    return "\n".join(lines)
