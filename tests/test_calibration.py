"""The calibration set of Table 2: disjoint random streams, and calibrated sizes at alpha.

* seed bookkeeping: every (stream, index) key drawn by the evaluated tasks is
  recorded while they run, and so is every key of the calibration tasks; the
  two sets are disjoint (templates redrawn, so every per-task stream is used);
* size: 200 NSIDE-16 evaluated realisations of the scenarios in which a test's
  null model is true, calibrated on 200 calibration mocks (exact null mocks and
  the parametric bootstrap at the fitted null), give a calibrated rejection
  fraction inside its binomial band around alpha; the Wilks size is printed
  beside it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_io_reduction import scenario

from hpcsys import seeds
from hpcsys.calibration import (
    CALIBRATION_STREAMS,
    bootstrap_points,
    calibration_mock,
    run_calibration,
)
from hpcsys.config import Config
from hpcsys.core.comparison import compare_models
from hpcsys.core.models import LRT_PAIRS
from hpcsys.io import CalibrationData, LRTArrays
from hpcsys.pipeline import make_mock, prepare_run, run_realisation
from hpcsys.reduction import null_true, table2

ALPHA = 0.05
#: NSIDE 16 polar cap, 3 templates: a model comparison in ~50 ms.
SMALL = {
    "run": {"master_seed": 777, "scenarios": ["null", "additive", "multiplicative"]},
    "sky": {"nside": 16, "footprint": "cap", "cap_radius_deg": 60.0, "number_density": 1.0},
    "templates": {"n_templates": 3, "correlation": 0.3},
    "contamination": {"additive_amplitude": 0.05, "multiplicative_amplitude": 0.1,
                      "zero_fraction": 0.0},
    "methods": {"names": ["OLS"], "likelihoods": ["gaussian", "skewnormal"],
                "mle_max_iter": 50},
    "twopoint": {"theta_max_arcmin": 1200.0, "n_bins": 5, "n_threads": 1},
}
PAIRS = tuple(f"{a}/{b}" for a, b in LRT_PAIRS)


def _config(**extra: object) -> Config:
    return Config().replace(**{f"{sec}.{k}": v for sec, d in SMALL.items() for k, v in d.items()},
                            **extra)


def test_no_evaluated_stream_occurs_in_the_calibration_set(monkeypatch) -> None:
    config = _config(**{"templates.redraw": True, "analysis.calibration_realisations": 3})
    ctx = prepare_run(config)
    used: set[tuple[int, ...]] = set()
    real = seeds.seed_sequence

    def recording(master, stream, *index):
        ss = real(master, stream, *index)
        used.add(tuple(ss.spawn_key))
        return ss

    monkeypatch.setattr(seeds, "seed_sequence", recording)
    evaluated: set[tuple[int, ...]] = set()
    words_eval = []
    for s in config.run.scenarios:
        for i in range(3):
            used.clear()
            words_eval.append(run_realisation(ctx, s, i).seed_words)
            evaluated |= used
    calibration: set[tuple[int, ...]] = set()
    comps = [compare_models(make_mock(ctx, s, 0).delta_obs, ctx.templates_for(0).templates,
                            config.methods.likelihoods).mle for s in config.run.scenarios]
    points = bootstrap_points(config.run.scenarios, {s: c.a[None] for s, c in
                                                     zip(config.run.scenarios, comps)},
                              {s: c.b[None] for s, c in zip(config.run.scenarios, comps)})
    words_cal = []
    for j in range(3):
        used.clear()
        words_cal.append(run_calibration(ctx, j, points).seed_words)
        calibration |= used
    streams = {v: k for k, v in seeds.STREAMS.items()}
    assert {streams[k[0]] for k in evaluated} == {"templates", "field", "counts", "method"}
    assert {streams[k[0]] for k in calibration} == set(CALIBRATION_STREAMS)
    assert not evaluated & calibration
    # the provenance words of the two sets never coincide either
    pairs_eval = {tuple(w[:2]) for w in words_eval} | {tuple(w[2:]) for w in words_eval}
    pairs_cal = {tuple(w[:2]) for w in words_cal} | {tuple(w[2:]) for w in words_cal}
    assert not pairs_eval & pairs_cal
    # and the calibration field is not any evaluated field
    K = config.n_templates
    cal0 = calibration_mock(ctx, 0, np.zeros(K), np.zeros(K)).delta_true
    assert all(not np.allclose(cal0, make_mock(ctx, "null", i).delta_true) for i in range(3))


def _lrt(ctx, scenario: str, index: int) -> tuple[np.ndarray, np.ndarray, object]:
    mock = make_mock(ctx, scenario, index)
    c = compare_models(mock.delta_obs, ctx.fixed.templates, ctx.config.methods.likelihoods,
                       max_iter=ctx.config.methods.mle_max_iter)
    return c.lrt.statistic, c.lrt.pvalue, c.mle


@pytest.mark.slow  # 600 evaluated and 200 x 7 calibration model comparisons, ~2 CPU minutes
def test_calibrated_size_is_alpha_on_independent_null_mocks() -> None:
    N = M = 200
    config = _config(**{"analysis.calibration_realisations": M})
    ctx = prepare_run(config)
    scen = config.run.scenarios
    lam, pval, mle_a, mle_b = {}, {}, {}, {}
    for s in scen:
        out = [_lrt(ctx, s, i) for i in range(N)]
        lam[s] = np.stack([o[0] for o in out])
        pval[s] = np.stack([o[1] for o in out])
        mle_a[s] = np.stack([o[2].a for o in out])
        mle_b[s] = np.stack([o[2].b for o in out])
    points = bootstrap_points(scen, mle_a, mle_b)
    recs = [run_calibration(ctx, j, points) for j in range(M)]
    cal = CalibrationData(
        scenarios=scen, bootstrap_models=points.models, index=np.arange(M),
        seed_words=np.stack([r.seed_words for r in recs]),
        statistic=np.stack([r.statistic for r in recs]),
        null_pvalue=np.stack([r.null_pvalue for r in recs]),
        bootstrap_a=points.a, bootstrap_b=points.b)

    rng = np.random.default_rng(0)  # fills the fields table2 does not read
    nan = np.full_like(lam[scen[0]], np.nan)
    data = {s: dataclasses.replace(scenario(s, N, rng), lrt=LRTArrays(
        lam[s], pval[s], np.zeros((N, len(PAIRS)), int), nan, nan,
        np.zeros((N, len(PAIRS)), int))) for s in scen}
    t = table2(data, PAIRS, config.methods.likelihoods, ALPHA, cal)
    # the calibration set is shared by all evaluated draws: its own binomial error adds
    band = 3.0 * np.sqrt(ALPHA * (1 - ALPHA) * (1.0 / N + 1.0 / M))
    lines = []
    for si, s in enumerate(scen):
        for q, pair in enumerate(PAIRS):
            if not null_true(s, pair):
                continue
            for li, lk in enumerate(config.methods.likelihoods):
                fc, ec = t.fraction_calibrated[si, q, li], t.error_calibrated[si, q, li]
                fw, ew = t.fraction_wilks[si, q, li], t.error_wilks[si, q, li]
                lines.append(f"{s:15s} {pair:24s} {lk:10s} calibrated {fc:.3f} ± {ec:.3f}  "
                             f"Wilks {fw:.3f} ± {ew:.3f}")
                assert abs(fc - ALPHA) < band, lines[-1]
    # not vacuous: the calibrated test rejects the contamination it is built to see
    powers = {(s, pair): t.fraction_calibrated[scen.index(s), PAIRS.index(pair)]
              for s, pair in (("additive", "null/additive"),
                              ("multiplicative", "null/multiplicative"))}
    print(f"\nsizes at alpha = {ALPHA}, N = {N} evaluated, M = {M} calibration mocks "
          f"(band ±{band:.3f}):\n" + "\n".join(lines) + "\npowers: "
          + "; ".join(f"{s} {p}: {v}" for (s, p), v in powers.items()))
    for v in powers.values():
        assert np.all(v > 0.8)


def test_bootstrap_points_are_the_scenario_mean_null_fits() -> None:
    """Mean over realisations of the free null model's MLE; other blocks exactly zero."""
    from hpcsys.calibration import BOOTSTRAP_MODELS, calibration_source
    from hpcsys.core.models import FIT_MODELS

    rng = np.random.default_rng(seeds.seed_words(1, "synthetic", 11)[0])
    N, F, L, K = 7, len(FIT_MODELS), 2, 3
    a, b = rng.normal(size=(N, F, L, K)), rng.normal(size=(N, F, L, K))
    a[2, FIT_MODELS.index("additive"), 0, 1] = np.nan  # a failed fit is left out
    pts = bootstrap_points(("null", "combined"), {"null": a, "combined": 2 * a},
                           {"null": b, "combined": b})
    assert BOOTSTRAP_MODELS == ("additive", "multiplicative") == pts.models
    fa, fm = FIT_MODELS.index("additive"), FIT_MODELS.index("multiplicative")
    keep = np.ones(N, bool)
    keep[2] = False
    np.testing.assert_allclose(pts.a[0, 0], a[keep, fa, 0].mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(pts.a[1, 0], 2 * a[keep, fa, 0].mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(pts.b[0, 1], b[:, fm, 0].mean(axis=0), rtol=1e-14)
    assert np.all(pts.b[:, 0] == 0.0) and np.all(pts.a[:, 1] == 0.0)
    assert calibration_source("null/combined").startswith("exact null mocks")
    assert "bootstrap" in calibration_source("multiplicative/combined")
