"""Registry of the six decontamination methods (Berlfein+24 Section 3).

Every method has the signature ``method(data, settings, seed) -> MethodResult``
with ``data`` a :class:`~hpcsys.methods.base.MapData`, ``settings`` the
``methods:`` section of the run configuration and ``seed`` the
:class:`numpy.random.SeedSequence` of the task (stream ``method`` of
:mod:`hpcsys.seeds`), the only source of randomness.

==============  ===============  ============================================
name            model            estimator
==============  ===============  ============================================
``OLS``         additive         least squares (:func:`~hpcsys.methods.regression.run_ols`)
``ElasticNet``  additive         patch-grouped CV elastic net (:func:`~hpcsys.methods.regression.run_elasticnet`)
``ISD-1``       combined, a = b  ISD, linear relations (:func:`~hpcsys.methods.isd.run_isd1`)
``ISD-3``       combined, a = b  ISD, cubic relations (:func:`~hpcsys.methods.isd.run_isd3`)
``MCMC-add``    additive         ensemble MCMC of (a, s) (:func:`~hpcsys.methods.ensemble.run_mcmc_add`)
``MCMC-comb``   combined         ensemble MCMC of (a, b, s) (:func:`~hpcsys.methods.ensemble.run_mcmc_comb`)
==============  ===============  ============================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import numpy as np

from hpcsys.config import METHOD_NAMES, MethodsSection
from hpcsys.methods._shared import MethodInputError, check_map_data
from hpcsys.methods.base import MapData, MethodResult
from hpcsys.methods.ensemble import run_mcmc_add, run_mcmc_comb
from hpcsys.methods.isd import run_isd1, run_isd3
from hpcsys.methods.regression import run_elasticnet, run_ols

__all__ = ["METHODS", "Method", "UnknownMethodError", "get_method", "run_method"]

#: Signature shared by all methods.
Method = Callable[[MapData, MethodsSection, np.random.SeedSequence], MethodResult]


class UnknownMethodError(MethodInputError, KeyError):
    """A method name that is not in :data:`METHODS`."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


#: Method name -> implementation; the names are exactly :data:`hpcsys.config.METHOD_NAMES`.
METHODS: Mapping[str, Method] = MappingProxyType({
    "OLS": run_ols,
    "ElasticNet": run_elasticnet,
    "ISD-1": run_isd1,
    "ISD-3": run_isd3,
    "MCMC-add": run_mcmc_add,
    "MCMC-comb": run_mcmc_comb,
})
assert tuple(METHODS) == METHOD_NAMES


def get_method(name: str) -> Method:
    """The implementation of a method by name.

    Raises
    ------
    UnknownMethodError
        For a name not in :data:`METHODS` (the message lists the valid names).
    """
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise UnknownMethodError(
            f"unknown method {name!r}; valid methods are {', '.join(METHODS)}"
        ) from None


def run_method(name: str, data: MapData, settings: MethodsSection,
               seed: np.random.SeedSequence, *, extend_chains: bool = False) -> MethodResult:
    """Validate the input and run one method.

    Parameters
    ----------
    name : str
        One of :data:`METHODS`.
    data : MapData
    settings : MethodsSection
    seed : numpy.random.SeedSequence
    extend_chains : bool
        MCMC methods only: extend the chain until converged or
        ``methods.mcmc_max_steps`` (``hpcsys fit``); ignored by the others.

    Returns
    -------
    MethodResult
        Always in the original (unrotated) template basis.

    Raises
    ------
    UnknownMethodError
        Unknown ``name``.
    MethodInputError
        Inconsistent or non-finite ``data``, or settings unusable for this map.
    """
    method = get_method(name)
    if not isinstance(seed, np.random.SeedSequence):
        raise MethodInputError(f"seed: expected a numpy.random.SeedSequence, got {type(seed).__name__}")
    check_map_data(data)
    if extend_chains and name in _SAMPLING_METHODS:
        return method(data, settings, seed, extend=True)
    return method(data, settings, seed)


#: Methods whose chains ``run_method(..., extend_chains=True)`` extends.
_SAMPLING_METHODS = ("MCMC-add", "MCMC-comb")
