"""Every public function of hpcsys.core works under jit and vmap and matches eager evaluation.

The list of public names is read from ``hpcsys.core.__all__`` and from each
module's ``__all__``; a name without a case here (and not exempted with a
reason) fails the test, so new functions must be added.
"""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hpcsys.core
from hpcsys.core import (
    comparison,
    contamination,
    correction,
    derivatives,
    fit,
    likelihood,
    models,
    pca,
    stats,
)
from hpcsys.core.derivatives import region_derivatives
from hpcsys.core.likelihood import param_layout
from hpcsys.seeds import rng

MODULES = (models, contamination, likelihood, derivatives, fit, comparison, pca, correction, stats)

#: Public names that are not array functions, with the reason.
EXEMPT = {
    "MODELS": "constant",
    "LIKELIHOODS": "constant",
    "FIT_MODELS": "constant",
    "LRT_PAIRS": "constant",
    "SCENARIOS": "constant",
    "ModelTerms": "container type (a NamedTuple)",
    "MLEGrid": "container type",
    "LRTMatrix": "container type",
    "ModelComparison": "container type",
    "compare_models": "Python loop over fit_mle (F x L fits) and the LRTs; returns a dataclass",
    "CovarianceProvider": "type alias of a callable",
    "extra_parameters": "static index set from model names and an int; no arrays",
    "wald_test": "float64 NumPy test of one fit's coefficients (compare_models); not traced",
    "ParamLayout": "container type",
    "MLEResult": "container type",
    "PCARotation": "container type (a NamedTuple pytree)",
    "LRTResult": "container type (a NamedTuple pytree)",
    "AmplitudeFit": "container type (a NamedTuple pytree)",
    "BinomialFraction": "container type (a NamedTuple pytree)",
    "param_layout": "static metadata from strings and an int; no arrays",
    "n_params": "static metadata from strings and an int; no arrays",
    # fit_mle returns an MLEResult pytree and is vmapped over maps in test_core_fit
    # (test_vmapped_fit_equals_single_fits); its static model/likelihood strings keep it
    # out of the generic jit/vmap cases here.
    "fit_mle": "vmapped in test_core_fit; static string arguments",
}

K, NPIX, B = 3, 400, 5
GEN = rng(7, "synthetic", 300)
T = jnp.asarray(GEN.standard_normal((K, NPIX)))
DELTA = jnp.asarray(0.3 * GEN.standard_normal((3, NPIX)))
COEF = jnp.asarray(GEN.normal(0, 0.05, (3, K)))
COEF2 = jnp.asarray(GEN.normal(0, 0.02, (3, K)))
S = jnp.asarray([0.3, 0.35, 0.4])
G = jnp.asarray([-1.0, 0.5, 2.0])
X = jnp.asarray(GEN.normal(0, 5, (3, 7)))
_L = GEN.standard_normal((K, K))
XI = jnp.asarray(np.exp(-np.arange(B))[:, None, None] * (_L @ _L.T)[None])
XI3 = jnp.stack([XI, 2 * XI, 3 * XI])
W = jnp.asarray(GEN.normal(0.01, 0.001, (3, B)))
TS = jnp.stack([T, T * 1.5 + 0.1 * jnp.roll(T, 1, axis=0), T[::-1]])
ROT = pca.pca_rotation(T)
_C = GEN.standard_normal((3, K, K))
COVS = jnp.asarray(_C @ np.transpose(_C, (0, 2, 1)) + np.eye(K))
SAMPLES = jnp.asarray(GEN.standard_normal((3, 30, B)))
COVB = stats.sample_covariance(SAMPLES)


def _theta(model, lik):
    lay = param_layout(model, lik, K)
    th = jnp.zeros((3, lay.size))
    if lay.a is not None:
        th = th.at[:, lay.a].set(COEF)
    if lay.b is not None:
        th = th.at[:, lay.b].set(COEF2)
    th = th.at[:, lay.s].set(S)
    if lay.g is not None:
        th = th.at[:, lay.g].set(G)
    return th


#: name -> list of (function of batched-able args, args for 3 cases stacked on axis 0, in_axes)
CASES = {
    "template_sum": [(lambda c: contamination.template_sum(c, T), (COEF,))],
    "contaminate": [(lambda d, a, b: contamination.contaminate(d, T, a, b), (DELTA, COEF, COEF2))],
    "decontaminate": [(lambda d, a, b: contamination.decontaminate(d, T, a, b), (DELTA, COEF, COEF2))],
    "unpack": [(lambda th: likelihood.unpack(th, "combined", "skewnormal", K),
                (_theta("combined", "skewnormal"),))],
    "pack": [(lambda a, b, s, g: likelihood.pack("combined", "skewnormal", a, b, s, g),
              (COEF, COEF2, S, G))],
    "loglike": [
        (lambda th, d, m=m, lk=lk: likelihood.loglike(th, d, T, m, lk), (_theta(m, lk), DELTA))
        for m, lk in (("null", "skewnormal"), ("additive", "gaussian"),
                      ("multiplicative", "skewnormal"), ("combined", "gaussian"),
                      ("combined", "skewnormal"))
    ],
    "log_ndtr": [(likelihood.log_ndtr, (X,))],
    "min_jacobian_factor": [(lambda b: likelihood.min_jacobian_factor(b, T), (COEF2,))],
    "skewnormal_location": [(likelihood.skewnormal_location, (S, G))],
    "loglike_derivatives": [
        (lambda th, d, m=m, lk=lk: fit.loglike_derivatives(th, d, T, m, lk), (_theta(m, lk), DELTA))
        for m, lk in (("combined", "skewnormal"),)
    ],
    "region_derivatives": [
        (lambda th, d: region_derivatives(th, d.reshape(4, NPIX // 4),
                                          T.reshape(K, 4, NPIX // 4),
                                          jnp.ones((4, NPIX // 4)), "combined", "gaussian"),
         (_theta("combined", "gaussian"), DELTA))
    ],
    "pca_rotation": [(pca.pca_rotation, (TS,))],
    "rotate_templates": [(lambda t: pca.rotate_templates(t, ROT), (TS,))],
    "to_original": [(lambda c: pca.to_original(c, ROT), (COEF,))],
    "cov_to_original": [(lambda c: pca.cov_to_original(c, ROT), (COVS,))],
    "debias": [(correction.debias, (COEF, COEF2**2))],
    "quadratic_form": [(correction.quadratic_form, (COEF, XI3))],
    "contaminate_w": [(correction.contaminate_w, (W, COEF, COEF2, XI3))],
    "correct_w": [(correction.correct_w, (W, COEF, COEF2, XI3))],
    "correct_w_unbiased": [(correction.correct_w_unbiased,
                            (W, COEF, COEF2, 1e-4 * COVS, 1e-4 * COVS, XI3))],
    "correct_w_diag": [(correction.correct_w_diag, (W, COEF, COEF2, jnp.einsum("nbkk->nbk", XI3)))],
    "likelihood_ratio_test": [(lambda a, b: stats.likelihood_ratio_test(a, b, 2), (S * -100, G))],
    "empirical_pvalue": [(stats.empirical_pvalue, (G, X))],
    "sample_covariance": [(stats.sample_covariance, (SAMPLES,))],
    "hartlap_inverse": [(lambda c: stats.hartlap_inverse(c, 30), (COVB,))],
    "amplitude_fit": [(lambda w: stats.amplitude_fit(w, W[0], jnp.linalg.inv(COVB[0])), (W,))],
    "binomial_fraction": [(lambda k: stats.binomial_fraction(k, 200), (jnp.asarray([0.0, 10.0, 50.0]),))],
}


def public_names() -> set[str]:
    names = set(hpcsys.core.__all__)
    for mod in MODULES:
        names |= set(importlib.import_module(mod.__name__).__all__)
    return names


def test_every_public_name_is_covered():
    names = public_names()
    assert not (set(CASES) & set(EXEMPT))
    missing = names - set(CASES) - set(EXEMPT)
    assert not missing, f"public core names without a jit/vmap case: {sorted(missing)}"
    stale = (set(CASES) | set(EXEMPT)) - names
    assert not stale, f"cases for names that are no longer public: {sorted(stale)}"
    for name in hpcsys.core.__all__:
        assert hasattr(hpcsys.core, name)


def _close(got, want):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-10, atol=1e-12)
    assert jax.tree.structure(got) == jax.tree.structure(want)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jit_and_vmap_match_eager(name):
    for fn, batched in CASES[name]:
        singles = [tuple(x[i] for x in batched) for i in range(3)]
        with jax.disable_jit():
            eager = [fn(*args) for args in singles]
        jitted = jax.jit(fn)
        for args, want in zip(singles, eager):
            _close(jitted(*args), want)
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *eager)
        _close(jax.jit(jax.vmap(fn))(*batched), stacked)
