"""Checks of :mod:`hpcsys.config` that involve more than one key.

:func:`_cross_checks` runs after every section is built and validated on its
own; it raises :class:`~hpcsys.config.ConfigError` naming the first key that
conflicts with another. A leaf: imports only :mod:`hpcsys._config_checks`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hpcsys._config_checks import ConfigError

if TYPE_CHECKING:
    from hpcsys.config import Config

__all__: list[str] = []


def _mock_run_checks(cfg: Config) -> None:
    """Checks that tie the methods to the mock templates of a simulation run.

    ``hpcsys fit`` on user maps skips them: there K comes from the maps.
    """
    K = cfg.templates.n_templates
    names = cfg.methods.names
    n_walk = cfg.methods.mcmc_walkers
    n_dim = {"MCMC-add": K + 1, "MCMC-comb": 2 * K + 1}
    for name, dim in n_dim.items():
        if name in names and n_walk < 2 * dim:
            raise ConfigError(
                f"methods.mcmc_walkers: {name} with K = {K} templates has {dim} parameters "
                f"and needs at least {2 * dim} walkers, got {n_walk}"
            )


def _cross_checks(cfg: Config, mock_run: bool = True) -> None:
    """Checks that involve more than one key."""
    K = cfg.templates.n_templates
    if cfg.sky.footprint == "file":
        if not cfg.sky.mask_file:
            raise ConfigError("sky.mask_file: required when sky.footprint is 'file'")
        if not Path(cfg.sky.mask_file).is_file():
            raise ConfigError(f"sky.mask_file: file not found: {cfg.sky.mask_file}")
    if cfg.sky.spectrum != "kids" and not Path(cfg.sky.spectrum).is_file():
        raise ConfigError(f"sky.spectrum: not 'kids' and no such file: {cfg.sky.spectrum}")
    m = cfg.templates.correlation_matrix
    if m is not None:
        if len(m) != K or any(len(row) != K for row in m):
            raise ConfigError(
                f"templates.correlation_matrix: must be {K} x {K} (templates.n_templates)"
            )
        import numpy as np

        arr = np.asarray(m, dtype=float)
        if not np.allclose(arr, arr.T) or not np.allclose(np.diag(arr), 1.0):
            raise ConfigError(
                "templates.correlation_matrix: must be symmetric with unit diagonal"
            )
        if np.linalg.eigvalsh(arr).min() <= 0:
            raise ConfigError("templates.correlation_matrix: must be positive definite")
    elif K > 1 and cfg.templates.correlation <= -1.0 / (K - 1):
        raise ConfigError(
            f"templates.correlation: must exceed -1/(K-1) = {-1.0 / (K - 1):.4g} for "
            f"K = {K} templates to give a positive-definite matrix"
        )
    if mock_run:
        _mock_run_checks(cfg)
    if cfg.methods.mcmc_backend == "jax" and cfg.methods.mcmc_walkers % 2:
        raise ConfigError(
            "methods.mcmc_walkers: the jax backend needs an even number of walkers, got "
            f"{cfg.methods.mcmc_walkers}"
        )
    if cfg.methods.mcmc_burn_in >= cfg.methods.mcmc_steps:
        raise ConfigError(
            f"methods.mcmc_burn_in: must be smaller than methods.mcmc_steps "
            f"({cfg.methods.mcmc_steps}), got {cfg.methods.mcmc_burn_in}"
        )
    if cfg.methods.mcmc_max_steps < cfg.methods.mcmc_steps:
        raise ConfigError(
            f"methods.mcmc_max_steps: must be at least methods.mcmc_steps "
            f"({cfg.methods.mcmc_steps}), got {cfg.methods.mcmc_max_steps}"
        )
    for r in cfg.methods.elasticnet_l1_ratio:
        if not 0 < r <= 1:
            raise ConfigError(f"methods.elasticnet_l1_ratio: entries must be in (0, 1], got {r}")
    tp = cfg.twopoint
    tmin = tp.theta_min_arcmin
    if tmin is not None and tmin >= tp.theta_max_arcmin:
        raise ConfigError(
            f"twopoint.theta_min_arcmin: must be below twopoint.theta_max_arcmin "
            f"({tp.theta_max_arcmin}), got {tmin}"
        )
