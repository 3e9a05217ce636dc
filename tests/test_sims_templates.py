"""Templates: standardised, correlated as requested; true coefficients."""

from __future__ import annotations

import numpy as np
import pytest

from hpcsys import seeds
from hpcsys.config import ConfigError, ContaminationSection, TemplatesSection
from hpcsys.sims.footprint import make_footprint
from hpcsys.sims.templates import (
    correlation_matrix,
    draw_templates,
    template_families,
    template_names,
)
from hpcsys.sims.truth import draw_truth


def test_templates_are_standardised_on_the_footprint():
    sec = TemplatesSection(n_templates=7)
    fp = make_footprint("kids", 32)
    T = draw_templates(sec, 32, fp.pixels, seeds.rng(1, "templates"))
    assert T.shape == (7, fp.n_pixels)
    np.testing.assert_allclose(T.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(T.std(axis=1), 1.0, rtol=1e-12)


def test_families_cycle_and_names():
    sec = TemplatesSection(n_templates=7, families=("exp", "white"))
    assert template_families(sec) == ("exp", "white", "exp", "white", "exp", "white", "exp")
    assert template_names(sec)[:2] == ("t00_exp", "t01_white")


def test_templates_reproduce_requested_correlation_matrix():
    """Mean sample correlation over 30 full-sky draws equals R within its sampling error."""
    R = np.array([[1.0, 0.6, -0.3, 0.1],
                  [0.6, 1.0, 0.2, 0.0],
                  [-0.3, 0.2, 1.0, 0.5],
                  [0.1, 0.0, 0.5, 1.0]])
    sec = TemplatesSection(n_templates=4, families=("exp", "gauss", "power1", "white"),
                           correlation_matrix=tuple(map(tuple, R)))
    np.testing.assert_array_equal(correlation_matrix(sec), R)
    nside, n = 16, 30
    fp = make_footprint("full", nside)
    corr = np.array([np.corrcoef(draw_templates(sec, nside, fp.pixels,
                                                seeds.rng(3, "synthetic", i)))
                     for i in range(n)])
    mean = corr.mean(0)
    err = corr.std(0, ddof=1) / np.sqrt(n)
    off = ~np.eye(4, dtype=bool)
    z = (mean - R)[off] / err[off]
    assert np.all(np.abs(z) < 4.0), z
    # the test has power: uncorrelated templates would be many sigma away
    assert np.max(np.abs(R[off]) / err[off]) > 10


def test_uniform_correlation_and_bad_matrices():
    R = correlation_matrix(TemplatesSection(n_templates=3, correlation=0.3))
    np.testing.assert_array_equal(R, [[1, 0.3, 0.3], [0.3, 1, 0.3], [0.3, 0.3, 1]])
    with pytest.raises(ConfigError, match=r"^templates\.correlation: "):
        correlation_matrix(TemplatesSection(n_templates=3, correlation=-0.6))
    with pytest.raises(ConfigError, match=r"^templates\.n_templates: "):
        correlation_matrix(TemplatesSection(n_templates=0))


def test_templates_deterministic_in_the_stream():
    sec = TemplatesSection(n_templates=3)
    fp = make_footprint("kids", 16)
    t1 = draw_templates(sec, 16, fp.pixels, seeds.rng(5, "templates"))
    t2 = draw_templates(sec, 16, fp.pixels, seeds.rng(5, "templates"))
    t3 = draw_templates(sec, 16, fp.pixels, seeds.rng(5, "templates", 0))
    np.testing.assert_array_equal(t1, t2)
    assert not np.allclose(t1, t3)


def test_truth_zero_fraction_and_amplitudes():
    sec = ContaminationSection(additive_amplitude=0.02, multiplicative_amplitude=0.05,
                               zero_fraction=0.4)
    tr = draw_truth(sec, 25, seeds.rng(11, "truth"))
    for coef, amp in ((tr.a, 0.02), (tr.b, 0.05)):
        nz = coef != 0
        assert nz.sum() == 15  # round(0.4 * 25) = 10 zeros
        assert np.sqrt(np.mean(coef[nz] ** 2)) == pytest.approx(amp, rel=1e-12)
    # zero patterns of a and b are drawn independently
    assert not np.array_equal(tr.a != 0, tr.b != 0)
    a, b = tr.for_scenario("null")
    assert not a.any() and not b.any()
    a, b = tr.for_scenario("additive")
    np.testing.assert_array_equal(a, tr.a)
    assert not b.any()
    a, b = tr.for_scenario("multiplicative")
    np.testing.assert_array_equal(b, tr.b)
    assert not a.any()
    a, b = tr.for_scenario("combined")
    np.testing.assert_array_equal(a, tr.a)
    np.testing.assert_array_equal(b, tr.b)
    with pytest.raises(ConfigError, match=r"^run\.scenarios"):
        tr.for_scenario("cosmic")
    again = draw_truth(sec, 25, seeds.rng(11, "truth"))
    np.testing.assert_array_equal(again.a, tr.a)


def test_truth_keeps_one_nonzero_entry():
    sec = ContaminationSection(zero_fraction=0.9)
    tr = draw_truth(sec, 1, seeds.rng(0, "truth"))
    assert tr.a.shape == (1,) and tr.a[0] != 0
