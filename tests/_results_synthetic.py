"""Seeded stand-ins for pipeline results, shared by the I/O and parallel tests.

:func:`random_result` builds a :class:`~hpcsys.pipeline.RealisationResult` with
the pipeline's shapes filled with seeded random numbers, so file round trips and
the task machinery can be tested without running the science;
:func:`assert_same` compares two results bit for bit.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hpcsys.core.comparison import LRTMatrix, MLEGrid
from hpcsys.core.models import FIT_MODELS, LRT_PAIRS
from hpcsys.io import SCHEMA_VERSION, Coordinates, Provenance
from hpcsys.methods.base import MethodDiagnostics, MethodResult
from hpcsys.methods.deletions import JackknifeErrors
from hpcsys.pipeline import STAGES, RealisationResult, TaskTimings

__all__ = [
    "LIKES",
    "METHODS",
    "NPIX",
    "B",
    "K",
    "assert_same",
    "coords",
    "provenance",
    "random_result",
]

K, B, NPIX = 3, 5, 40
METHODS = ("OLS", "ISD-1", "MCMC-comb")
LIKES = ("gaussian", "skewnormal")


def random_result(scenario: str, index: int, seed: int = 0) -> RealisationResult:
    """A RealisationResult filled with seeded random numbers (shapes as the pipeline's)."""
    rng = np.random.default_rng([seed, index, len(scenario)])
    M, F, L, Q = len(METHODS), len(FIT_MODELS), len(LIKES), len(LRT_PAIRS)
    methods = tuple(
        MethodResult(
            name=name, model=("additive", "multiplicative", "combined")[m],
            a=rng.normal(size=K), b=rng.normal(size=K), a_err=rng.random(K),
            b_err=np.full(K, np.nan), cov=rng.normal(size=(2 * K, 2 * K)),
            sigma=float(rng.random()), weights=rng.random(NPIX), corrected=rng.normal(size=NPIX),
            diagnostics=MethodDiagnostics(
                converged=bool(rng.random() > 0.5), n_iterations=int(rng.integers(100)),
                acceptance_fraction=float(rng.random()), hit_pole=False,
                wall_time=float(rng.random()), message=f"msg {index}",
                rhat_max=float(1 + rng.random()), stop_reason=f"stop {index}"),
            a_mean=rng.normal(size=K) if name.startswith("MCMC") else np.empty(0),
            a_err_indep=rng.random(K) if name == "OLS" else np.empty(0),
            cov_indep=rng.normal(size=(2 * K, 2 * K)) if name == "OLS" else np.empty(0),
            **({k: rng.normal(size=K) for k in ("a_median", "b_median", "a_ess", "b_ess")}
               | {k: rng.normal(size=(K, 2)) for k in ("a_ci68", "b_ci68", "a_ci95", "b_ci95")}
               if name.startswith("MCMC") else {}),
        )
        for m, name in enumerate(METHODS)
    )
    return RealisationResult(
        scenario=scenario, index=index,
        seed_words=rng.integers(0, 2**32, size=4, dtype=np.uint32),
        a_true=rng.normal(size=K), b_true=rng.normal(size=K),
        theta_arcmin=np.geomspace(10, 300, B),
        w_true=rng.normal(size=B), w_obs=rng.normal(size=B), methods=methods,
        w_corrected=rng.normal(size=(M, B)), w_corrected_diag=rng.normal(size=(M, B)),
        w_remeasured=rng.normal(size=(M, B)),
        mle=MLEGrid(
            loglike=rng.normal(size=(F, L)), converged=rng.random((F, L)) > 0.3,
            hit_pole=np.zeros((F, L), bool),
            a=rng.normal(size=(F, L, K)), b=rng.normal(size=(F, L, K)),
            a_err=rng.random((F, L, K)), b_err=rng.random((F, L, K)),
            s=rng.random((F, L)), g=rng.normal(size=(F, L)),
            cov=rng.normal(size=(F, L, 2 * K, 2 * K)),
            a_err_indep=rng.random((F, L, K)), b_err_indep=rng.random((F, L, K))),
        lrt=LRTMatrix(statistic=rng.chisquare(3, size=(Q, L)), pvalue=rng.random((Q, L)),
                      dof=rng.integers(1, 7, size=Q),
                      wald_statistic=rng.chisquare(3, size=(Q, L)),
                      wald_pvalue=rng.random((Q, L)), wald_dof=rng.integers(1, 7, size=Q)),
        jackknife=JackknifeErrors(
            n_regions=12, method_cov=rng.normal(size=(M, 2 * K, 2 * K)),
            mle_a_err=rng.random((F, L, K)), mle_b_err=rng.random((F, L, K))),
        timings=TaskTimings(stage_seconds=rng.random(len(STAGES)),
                            peak_memory_mb=float(rng.random() * 100)),
    )


def assert_same(x, y, where="") -> None:
    """Exact (bitwise, nan-aware) equality of nested dataclasses / arrays / scalars."""
    if dataclasses.is_dataclass(x):
        assert type(x) is type(y), where
        for f in dataclasses.fields(x):
            assert_same(getattr(x, f.name), getattr(y, f.name), f"{where}.{f.name}")
    elif isinstance(x, tuple) and x and dataclasses.is_dataclass(x[0]):
        assert len(x) == len(y), where
        for i, (a, b) in enumerate(zip(x, y)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(x, np.ndarray):
        assert isinstance(y, np.ndarray), where
        assert x.dtype == y.dtype and x.shape == y.shape, where
        np.testing.assert_array_equal(x, y, err_msg=where)
    else:
        assert type(x) is type(y), f"{where}: {type(x)} vs {type(y)}"
        assert x == y or (x != x and y != y), where


def coords() -> Coordinates:
    return Coordinates(
        scenario=("null", "additive"), method=METHODS, likelihood=LIKES, fit_model=FIT_MODELS,
        lrt_pair=tuple(f"{a}/{b}" for a, b in LRT_PAIRS), stage=STAGES,
        template=tuple(f"t{i}" for i in range(K)))


def provenance(n_tasks: int) -> Provenance:
    return Provenance(
        schema_version=SCHEMA_VERSION, hpcsys_version="test", git_hash="", config_text="a: 1\n",
        config_source="<test>", master_seed=7, created="2026-01-01T00:00:00+00:00", n_ranks=2,
        hosts=("h1", "h2"), devices=("cpu",), n_tasks=n_tasks)
