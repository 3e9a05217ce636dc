"""Null KiDS-like lognormal mocks at small NSIDE, shared by the statistical tests.

Not a test module (no ``test_`` prefix): the project's own KiDS footprint and
spectrum, lognormal field with Poisson sampling, no contamination, templates
with large-scale power (exp/gauss/power2/power1 families) drawn once.
"""

from __future__ import annotations

import numpy as np

__all__ = ["kids_mocks"]


def kids_mocks(nside: int, n_draws: int, K: int = 4, seed: int = 20261201):
    """``(footprint, templates (K, Npix), iterator of n_draws null delta_obs maps)``."""
    from hpcsys.config import parse_config
    from hpcsys.seeds import rng
    from hpcsys.sims.fields import draw_lognormal, lognormal_gaussian_cl
    from hpcsys.sims.footprint import make_footprint
    from hpcsys.sims.mock import mean_count_per_pixel, observe, true_overdensity
    from hpcsys.sims.spectra import target_cl
    from hpcsys.sims.templates import draw_templates

    cfg = parse_config({"sky": {"nside": nside, "footprint": "kids"},
                        "templates": {"n_templates": K,
                                      "families": ["exp", "gauss", "power2", "power1"]}})
    fp = make_footprint("kids", nside)
    gl = lognormal_gaussian_cl(target_cl(cfg.sky.spectrum, cfg.sky.galaxy_bias, 3 * nside - 1))
    T = draw_templates(cfg.templates, nside, fp.pixels, rng(seed, "templates"))
    nbar = mean_count_per_pixel(cfg.sky.number_density, nside)

    def draws():
        for i in range(n_draws):
            field_rng, count_rng = rng(seed, "field", i), rng(seed, "counts", i)
            delta = draw_lognormal(gl, nside, field_rng)
            yield observe(true_overdensity(delta[fp.pixels]), T, np.zeros(K), np.zeros(K),
                          nbar_pixel=nbar, shot_noise=True, rng=count_rng).delta_obs

    return fp, T, draws()
