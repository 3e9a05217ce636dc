"""The model vocabulary: contamination models, likelihoods and likelihood-ratio pairs.

The one definition of the names every other module uses (configuration
validation, simulation, fits, the results file, the reducer). Pure Python: it
imports nothing (no JAX), so :mod:`hpcsys.config` can validate against it
without pulling in the numerical stack.

* :data:`MODELS` — the contamination models of Berlfein+24 Eqs. 11-13 (plus
  ``null``) and which of the additive coefficients ``a`` and multiplicative
  coefficients ``b`` each contains (:class:`ModelTerms`);
* :data:`SCENARIOS` — the simulated contamination scenarios, one per model;
* :data:`FIT_MODELS` — the models fitted by maximum likelihood for the LRT
  matrix;
* :data:`LRT_PAIRS` — the nested ``(null model, alternative model)`` pairs of
  the likelihood-ratio tests (Berlfein+24 Eq. 19);
* :data:`LIKELIHOODS` — the pixel likelihoods (Berlfein+24 Eqs. 17-18).

See docs/science/models.rst for the equations.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["FIT_MODELS", "LIKELIHOODS", "LRT_PAIRS", "MODELS", "SCENARIOS", "ModelTerms"]


class ModelTerms(NamedTuple):
    """Which coefficient blocks a contamination model contains."""

    has_a: bool
    has_b: bool


#: Contamination models (Berlfein+24 Eqs. 11-13 and the uncontaminated null):
#: model name -> whether it has the additive ``a`` and the multiplicative ``b``.
MODELS: dict[str, ModelTerms] = {
    "null": ModelTerms(False, False),
    "additive": ModelTerms(True, False),
    "multiplicative": ModelTerms(False, True),
    "combined": ModelTerms(True, True),
}
#: Contamination scenarios simulated by a run: one per model, in model order.
SCENARIOS: tuple[str, ...] = tuple(MODELS)
#: Models fitted by maximum likelihood for the LRT matrix (Berlfein+24 Eq. 19).
FIT_MODELS: tuple[str, ...] = ("null", "additive", "multiplicative", "combined")
#: (null model, alternative model) pairs of the likelihood-ratio tests (Berlfein+24 Eq. 19).
LRT_PAIRS: tuple[tuple[str, str], ...] = (
    ("null", "additive"),
    ("null", "multiplicative"),
    ("null", "combined"),
    ("additive", "combined"),
    ("multiplicative", "combined"),
)
#: Pixel likelihoods (Berlfein+24 Eqs. 17-18).
LIKELIHOODS: tuple[str, ...] = ("gaussian", "skewnormal")
