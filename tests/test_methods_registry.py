"""Registry and interface of the six methods: names, errors, input validation, result shapes."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _methods_synthetic import synthetic_map

from hpcsys.config import METHOD_NAMES, MethodsSection
from hpcsys.methods import (
    METHODS,
    MethodInputError,
    UnknownMethodError,
    get_method,
    run_method,
)
from hpcsys.seeds import seed_sequence


def test_registry_names_match_config():
    assert tuple(METHODS) == METHOD_NAMES
    for name in METHOD_NAMES:
        assert callable(get_method(name))


@pytest.mark.parametrize("name", ["ols", "MCMC", "", None])
def test_unknown_method_is_a_clear_value_error(name):
    with pytest.raises(UnknownMethodError, match="valid methods are OLS, ElasticNet"):
        get_method(name)
    data = synthetic_map(0, npix=500, K=2)
    with pytest.raises(ValueError, match=f"unknown method {name!r}"):
        run_method(name, data, MethodsSection(), seed_sequence(1, "method", 0))


def test_bad_map_data_names_the_field():
    data = synthetic_map(0, npix=500, K=2)
    seed = seed_sequence(1, "method", 0)
    st = MethodsSection()
    bad = {
        "MapData.templates": replace(data, templates=data.templates[:, :-1]),
        "MapData.pixels": replace(data, pixels=data.pixels[:-1]),
        "MapData.delta": replace(data, delta=np.where(np.arange(500) == 3, np.nan, data.delta)),
        "MapData.nside": replace(data, nside=100),
        "MapData.names": replace(data, names=("x",)),
    }
    for field, d in bad.items():
        with pytest.raises(MethodInputError, match=field.replace(".", r"\.")):
            run_method("OLS", d, st, seed)
    with pytest.raises(MethodInputError, match="seed"):
        run_method("OLS", data, st, 42)


@pytest.mark.parametrize(("backend", "walkers"), [("emcee", 8), ("jax", 8), ("jax", 11)])
def test_bad_walker_count_is_a_config_error(backend, walkers):
    data = synthetic_map(0, npix=500, K=2)
    # combined K=2 has 5 parameters -> needs 10 walkers; the jax backend needs an even number
    st = MethodsSection(mcmc_walkers=walkers, mcmc_backend=backend)
    with pytest.raises(MethodInputError, match=r"methods\.mcmc_walkers"):
        run_method("MCMC-comb", data, st, seed_sequence(1, "method", 0))


def test_elasticnet_too_few_patches_is_a_config_error():
    data = synthetic_map(0, npix=500, K=2)  # 500 polar pixels at NSIDE 64: 4 NSIDE-4 patches
    st = MethodsSection(elasticnet_folds=5, elasticnet_patch_nside=4)
    with pytest.raises(MethodInputError, match=r"methods\.elasticnet_patch_nside"):
        run_method("ElasticNet", data, st, seed_sequence(1, "method", 0))


@pytest.mark.parametrize("name", ["OLS", "ElasticNet", "ISD-1", "ISD-3"])
def test_result_shapes_follow_the_contract(name):
    K, npix = 3, 4000
    data = synthetic_map(1, npix=npix, K=K, a=[0.05, 0.0, 0.0])
    r = run_method(name, data, MethodsSection(elasticnet_folds=3), seed_sequence(1, "method", 0))
    assert r.name == name
    for arr in (r.a, r.b, r.a_err, r.b_err, r.a_mean, r.b_mean, r.a_std, r.b_std):
        assert arr.shape == (K,)
    assert r.cov.shape == (2 * K, 2 * K)
    assert r.weights.shape == r.corrected.shape == (npix,)
    assert np.all(np.isfinite(r.corrected))
    if r.model == "additive":
        assert np.all(r.b == 0) and np.all(np.isnan(r.b_err)) and np.all(r.weights == 1)
    if r.model == "multiplicative":
        assert np.all(r.a == 0) and np.all(np.isnan(r.a_err))
        assert np.isclose(r.weights.mean(), 1.0)
