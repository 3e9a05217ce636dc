"""The six decontamination methods of Berlfein+24 behind one interface and a registry.

``run_method(name, data, settings, seed)`` runs one of :data:`METHODS`
(``OLS``, ``ElasticNet``, ``ISD-1``, ``ISD-3``, ``MCMC-add``, ``MCMC-comb``)
on a :class:`MapData` and returns a :class:`MethodResult` in the original
template basis.
"""

from hpcsys.methods._shared import MethodInputError
from hpcsys.methods.base import MapData, MethodDiagnostics, MethodResult
from hpcsys.methods.registry import METHODS, UnknownMethodError, get_method, run_method

__all__ = [
    "METHODS",
    "MapData",
    "MethodDiagnostics",
    "MethodInputError",
    "MethodResult",
    "UnknownMethodError",
    "get_method",
    "run_method",
]
