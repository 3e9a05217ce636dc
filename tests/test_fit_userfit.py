"""``hpcsys fit`` end to end on FITS files, the Python API, and its outputs.

Synthetic sky: NSIDE 32, a 6144-pixel hemisphere footprint, a white Gaussian
true field (independent pixels, so the likelihood errors are the right scale
for the tolerances) and three correlated templates with known combined
contamination (Berlfein+24 Eq. 13) in the footprint-standardised basis.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import h5py
import healpy as hp
import numpy as np
import pytest
from scipy import stats

from hpcsys.cli import convergence_warnings, format_fit_summary, main
from hpcsys.config import METHOD_NAMES, WEIGHT_MAP_METHODS, Config, ConfigError
from hpcsys.core.models import LRT_PAIRS
from hpcsys.io.fitfile import FitFileError, write_fit_result
from hpcsys.io.fitfile import read_fit_result as _read_fit_result
from hpcsys.io.maps import MapInputError
from hpcsys.seeds import rng
from hpcsys.userfit import (
    FitResult,
    fit_maps,
    fit_result_type,
    method_seed,
)

NSIDE = 32
NPIX = 12 * NSIDE**2
SIGMA = 0.1
A_TRUE = np.array([0.02, 0.0, -0.015])
B_TRUE = np.array([0.08, -0.06, 0.0])
# small, fast sampler and CV settings: the statistics checked below allow them
FAST = [
    "methods.mcmc_walkers=16",
    "methods.mcmc_steps=300",
    "methods.mcmc_burn_in=100",
    "methods.mcmc_max_steps=2100",
    "methods.elasticnet_folds=3",
    "methods.elasticnet_l1_ratio=[0.5, 1.0]",
]


def read_fit_result(path):
    return _read_fit_result(path, fit_result_type())


def _synthetic_sky():
    g = rng(11, "synthetic", 0)
    theta, _ = hp.pix2ang(NSIDE, np.arange(NPIX))
    mask = (theta < np.pi / 2).astype(float)
    fp = mask > 0
    corr = np.array([[1.0, 0.4, 0.2], [0.4, 1.0, 0.3], [0.2, 0.3, 1.0]])
    raw = np.linalg.cholesky(corr) @ g.standard_normal((3, NPIX))
    raw = raw * np.array([[2.0], [0.5], [10.0]]) + np.array([[1.0], [-3.0], [100.0]])
    z = (raw - raw[:, fp].mean(axis=1, keepdims=True)) / raw[:, fp].std(axis=1, keepdims=True)
    delta = SIGMA * g.standard_normal(NPIX)
    obs = delta * (1.0 + B_TRUE @ z) + A_TRUE @ z
    obs[~fp] = hp.UNSEEN
    return obs, raw, mask


@pytest.fixture(scope="module")
def sky():
    return _synthetic_sky()


@pytest.fixture(scope="module")
def files(sky, tmp_path_factory):
    """FITS inputs: the map, a NESTED two-column template file, a duplicate, a mask."""
    obs, raw, mask = sky
    d = tmp_path_factory.mktemp("fitmaps")
    hp.write_map(str(d / "delta.fits"), obs, dtype=np.float64)
    hp.write_map(str(d / "t0.fits"), raw[0], dtype=np.float64)
    hp.write_map(str(d / "t12.fits"), hp.reorder(raw[1:], r2n=True), nest=True,
                 column_names=["STARS", "DUST"], dtype=np.float64)
    hp.write_map(str(d / "t0copy.fits"), 2.0 * raw[0] + 5.0, dtype=np.float64)
    hp.write_map(str(d / "mask.fits"), mask, dtype=np.float64)
    return d


def _cli(argv):
    """``hpcsys ARGV`` through the package's entry point."""
    return main(argv)


@pytest.fixture(scope="module")
def cli_run(files, tmp_path_factory):
    """One full ``hpcsys fit`` run: all six methods, Gaussian likelihood.

    (The skew-normal fits take the same path but cost ~15 s of compilation
    each; tests/test_core_fit* cover them.)
    """
    out = tmp_path_factory.mktemp("fitout")
    argv = ["fit", str(files / "delta.fits"), "--templates", str(files / "t0.fits"),
            str(files / "t12.fits"), str(files / "t0copy.fits"), "--mask", str(files / "mask.fits"),
            "--out", str(out / "fit.h5"), "--weights-fits", str(out / "w.fits"),
            "--weights-method", "MCMC-comb", "--seed", "3", "--likelihoods", "gaussian"]
    for item in FAST:
        argv += ["--set", item]
    code = _cli(argv)
    return code, out


def test_cli_end_to_end_writes_documented_outputs(cli_run, files, sky):
    code, out = cli_run
    assert code == 0
    res = read_fit_result(out / "fit.h5")
    assert isinstance(res, FitResult)
    assert tuple(r.name for r in res.methods) == METHOD_NAMES
    m = res.map
    nfp = int(np.count_nonzero(sky[2]))
    assert (m.nside, m.n_pixels, m.n_sky_pixels) == (NSIDE, nfp, NPIX)
    assert m.template_names == ("t0", "t12:STARS", "t12:DUST")
    assert m.dropped == ("t0copy",)
    assert m.dropped_reasons[0].startswith("duplicate of t0")
    assert any("NESTED, reordered to RING" in n for n in m.notes)
    assert m.n_outside_mask == NPIX - nfp and m.n_bad_map == 0
    for r in res.methods:  # the weighting methods are exactly those with a b term
        assert (r.name in WEIGHT_MAP_METHODS) == (r.model != "additive"), r.name
    assert res.seed == 3 and res.settings.mcmc_walkers == 16
    assert res.inputs[0] == f"map={files / 'delta.fits'}"
    with h5py.File(out / "fit.h5", "r") as f:
        assert f.attrs["format"] == "hpcsys-fit" and f.attrs["format_version"] == 3
        assert f.attrs["hpcsys_version"] and f.attrs["seed"] == 3
        assert f["methods/0"].attrs["name"] == "OLS"
        assert f["methods/5/diagnostics"].attrs["converged"] in (True, False)
        assert f["mle/0"].attrs["model"] == "null"
        assert {"closed", "status", "decrement", "loglike"} <= set(f["mle/0"].attrs)
        assert f["lrt/statistic"].shape == (len(LRT_PAIRS),)
        # honest errors and the Wald p-value under the default names, the others beside
        assert {"a_err", "a_err_indep", "cov", "cov_indep"} <= set(f["mle/3"])
        assert {"a_err", "a_err_indep", "cov", "cov_indep"} <= set(f["methods/0"])
        assert {"pvalue", "pvalue_indep", "wald_statistic", "wald_dof"} <= set(f["lrt"])
        np.testing.assert_array_equal(f["map/pixels"][()], np.flatnonzero(sky[2]))
    # FITS weight map: full sky, UNSEEN outside the footprint, the method's weights inside
    w, hdr = hp.read_map(str(out / "w.fits"), h=True, dtype=np.float64)
    hdr = dict(hdr)
    assert hdr["HPCMETH"] == "MCMC-comb" and hdr["ORDERING"] == "RING"
    np.testing.assert_array_equal(w[res.map.pixels], res.method("MCMC-comb").weights)
    assert np.all(w[sky[2] == 0] == hp.UNSEEN)


def test_coefficients_recovered_within_errors(cli_run):
    """MLE and per-method estimates of the injected (a, b) within 4 sigma of their errors."""
    res = read_fit_result(cli_run[1] / "fit.h5")
    assert res.settings.likelihoods == ("gaussian",)
    fit = res.mle_fit("combined", "gaussian")
    assert fit.converged and not fit.hit_pole
    assert np.all(np.abs(fit.a - A_TRUE) < 4 * fit.a_err), (fit.a, fit.a_err)
    assert np.all(np.abs(fit.b - B_TRUE) < 4 * fit.b_err), (fit.b, fit.b_err)
    s_err = np.sqrt(fit.cov_indep[2 * 3, 2 * 3])  # theta = (a, b, s)
    assert abs(fit.s - SIGMA) < 4 * s_err
    ols = res.method("OLS")
    assert np.all(np.abs(ols.a - A_TRUE) < 4 * ols.a_err)
    comb = res.method("MCMC-comb")
    assert np.all(np.abs(comb.a - A_TRUE) < 4 * comb.a_err)
    assert np.all(np.abs(comb.b - B_TRUE) < 4 * comb.b_err)
    madd = res.method("MCMC-add")
    assert np.all(np.abs(madd.a - A_TRUE) < 4 * madd.a_err)


def test_lrt_table_is_eq19_of_the_stored_maxima(cli_run):
    res = read_fit_result(cli_run[1] / "fit.h5")
    t = res.lrt
    K = 3
    dofs = {("null", "additive"): K, ("null", "multiplicative"): K, ("null", "combined"): 2 * K,
            ("additive", "combined"): K, ("multiplicative", "combined"): K}
    for i in range(len(t.null_model)):
        null, alt, lik = t.null_model[i], t.alt_model[i], t.likelihood[i]
        f0, f1 = res.mle_fit(null, lik), res.mle_fit(alt, lik)
        assert isinstance(f0.loglike, float) and t.statistic.dtype == np.float64
        lam = 2.0 * (f1.loglike - f0.loglike)  # the stored float64 maxima
        assert t.statistic[i] == pytest.approx(lam, rel=1e-9, abs=1e-12)
        assert t.pvalue_indep[i] == pytest.approx(stats.chi2.sf(lam, t.dof[i]), rel=1e-9,
                                                  abs=1e-300)
        assert t.dof[i] == dofs[(null, alt)]
        assert t.converged[i]
        # Wald: the alternative's extra coefficients with their stored sandwich covariance
        extra = [k for k, on in enumerate(np.r_[np.isnan(f0.a_err), np.isnan(f0.b_err)]
                                          & np.isfinite(np.r_[f1.a_err, f1.b_err])) if on]
        theta = np.r_[f1.a, f1.b][extra]
        W = theta @ np.linalg.solve(f1.cov[np.ix_(extra, extra)], theta)
        assert t.wald_dof[i] == len(extra) == (2 * K if null == "null" and alt == "combined"
                                               else K)
        assert t.wald_statistic[i] == pytest.approx(W, rel=1e-9)
        assert t.pvalue[i] == pytest.approx(stats.chi2.sf(W, len(extra)), rel=1e-9, abs=1e-300)
    # b is detected at several sigma: the additive model is rejected against combined
    i = [j for j in range(len(t.null_model)) if (t.null_model[j], t.alt_model[j]) ==
         ("additive", "combined")]
    assert np.all(t.pvalue[i] < 1e-3)


def test_python_api_matches_cli_and_is_deterministic(sky, cli_run):
    obs, raw, mask = sky
    settings = Config().replace(**{"templates.n_templates": 3, "methods.mcmc_walkers": 16,
                                   "methods.mcmc_steps": 300, "methods.mcmc_burn_in": 100,
                                   "methods.mcmc_max_steps": 2100}).methods
    kw = dict(mask=mask, names=["t0", "t12:STARS", "t12:DUST"], methods=["OLS", "MCMC-add"],
              likelihoods=["gaussian"], settings=settings, seed=3)
    r1 = fit_maps(obs, raw, **kw)
    r2 = fit_maps(obs, raw, **kw)
    cli = read_fit_result(cli_run[1] / "fit.h5")
    # same seed stream per method whatever else runs: identical to the CLI's six-method run
    for name in ("OLS", "MCMC-add"):
        np.testing.assert_array_equal(r1.method(name).a, r2.method(name).a)
        np.testing.assert_allclose(r1.method(name).a, cli.method(name).a, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(r1.mle_fit("combined", "gaussian").theta,
                               cli.mle_fit("combined", "gaussian").theta, rtol=1e-9)
    assert method_seed(3, "MCMC-add").spawn_key == (4, 0, 0, METHOD_NAMES.index("MCMC-add"))


def test_roundtrip_of_written_result(sky, tmp_path):
    obs, raw, mask = sky
    res = fit_maps(obs, raw, mask=mask, methods=["OLS", "ISD-1"], likelihoods=["gaussian"])
    write_fit_result(res, tmp_path / "r.h5", weights_fits=tmp_path / "w.fits")
    back = read_fit_result(tmp_path / "r.h5")
    assert back.settings == res.settings
    for a, b in zip(back.methods, res.methods):
        np.testing.assert_array_equal(a.a, b.a)
        np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(back.lrt.pvalue, res.lrt.pvalue)
    assert convergence_warnings(res) == []
    older = tmp_path / "older.h5"  # a fit file of another format version is refused by name
    older.write_bytes((tmp_path / "r.h5").read_bytes())
    with h5py.File(older, "r+") as f:
        f.attrs["format_version"] = 1
    with pytest.raises(MapInputError, match="format version 1; this hpcsys reads version 3"):
        read_fit_result(older)
    for a, b in zip(back.mle, res.mle):  # the MLE pytree round-trips through the fit file
        np.testing.assert_array_equal(a.theta, b.theta)
        assert (a.model, a.likelihood, a.loglike, a.message) == (
            b.model, b.likelihood, b.loglike, b.message)
    bad = dataclasses.replace(res.mle[-1], converged=False, status=3, decrement=0.5)
    warned = convergence_warnings(dataclasses.replace(res, mle=(*res.mle[:-1], bad)))
    assert warned == [f"MLE fit {bad.model}/gaussian did not converge (stopped: line search found "
                      "no increase of lnL (lambda^2/2 = 0.5)); its LRT rows are flagged"]
    with pytest.raises(FitFileError, match="--weights-method OLS: not a weighting method"):
        write_fit_result(res, tmp_path / "r2.h5", tmp_path / "w2.fits", weights_method="OLS",
                         weighting_methods=WEIGHT_MAP_METHODS)
    with pytest.raises(FitFileError, match="--weights-method ISD-3: was not run"):
        write_fit_result(res, tmp_path / "r2.h5", tmp_path / "w2.fits", weights_method="ISD-3")


def test_fewer_pixels_than_parameters_is_refused(sky):
    obs, raw, _ = sky
    small = np.zeros(NPIX)
    small[:7] = 1.0  # 7 pixels; combined skew-normal with K = 3 has 8 parameters
    with pytest.raises(MapInputError, match="footprint: 7 usable pixels, not more than the 8"):
        fit_maps(obs, raw, mask=small, methods=["OLS"])
    with pytest.raises(ConfigError, match=r"methods\.names: unknown entries"):
        fit_maps(obs, raw, methods=["LASSO"])


# --------------------------------------------------------------------------- CLI bad input


def _bad_files(files, tmp):
    obs = hp.read_map(str(files / "delta.fits"), dtype=np.float64)
    hp.write_map(str(tmp / "coarse.fits"), hp.ud_grade(obs, 16), dtype=np.float64)
    hp.write_map(str(tmp / "const.fits"), np.ones(NPIX), dtype=np.float64)
    hp.write_map(str(tmp / "empty_mask.fits"), np.zeros(NPIX), dtype=np.float64)
    (tmp / "text.fits").write_text("not fits")
    return {
        "missing file": (["fit", str(tmp / "nope.fits"), "-t", str(files / "t0.fits")],
                         "nope.fits: no such file"),
        "not FITS": (["fit", str(files / "delta.fits"), "-t", str(tmp / "text.fits")],
                     "text.fits: not a FITS file"),
        "NSIDE mismatch": (["fit", str(files / "delta.fits"), "-t", str(tmp / "coarse.fits")],
                           "coarse.fits: NSIDE 16 differs from NSIDE 32"),
        "empty footprint": (["fit", str(files / "delta.fits"), "-t", str(files / "t0.fits"),
                             "--mask", str(tmp / "empty_mask.fits")], "empty footprint"),
        "only constant templates": (["fit", str(files / "delta.fits"), "-t",
                                     str(tmp / "const.fits")], "no usable template"),
        "counts without mask": (["fit", str(files / "delta.fits"), "-t", str(files / "t0.fits"),
                                 "--counts"], "--mask: required with --counts"),
        "foreign --set": (["fit", str(files / "delta.fits"), "-t", str(files / "t0.fits"),
                           "--set", "sky.nside=64"], "only methods.* settings"),
        "bad --set value": (["fit", str(files / "delta.fits"), "-t", str(files / "t0.fits"),
                             "--set", "methods.mcmc_walkers=2"], "methods.mcmc_walkers: must be"),
        "unknown method": (["fit", str(files / "delta.fits"), "-t", str(files / "t0.fits"),
                            "--methods", "LASSO"], "methods.names: unknown entries"),
        "weights from additive method": (
            ["fit", str(files / "delta.fits"), "-t", str(files / "t0.fits"), "--weights-fits",
             str(tmp / "w.fits"), "--weights-method", "OLS"], "not a weighting method"),
        "output directory missing": (["fit", str(files / "delta.fits"), "-t",
                                      str(files / "t0.fits")], "does not exist"),
    }


@pytest.mark.parametrize("case", [
    "missing file", "not FITS", "NSIDE mismatch", "empty footprint", "only constant templates",
    "counts without mask", "foreign --set", "bad --set value", "unknown method",
    "weights from additive method", "output directory missing",
])
def test_cli_bad_input_one_line_exit_2(case, files, tmp_path, capsys):
    argv, expected = _bad_files(files, tmp_path)[case]
    out = tmp_path / "nodir" / "o.h5" if case == "output directory missing" else tmp_path / "o.h5"
    code = _cli([*argv, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("hpcsys fit: ") and "\n" not in err
    assert expected in err
    assert not (tmp_path / "o.h5").exists()



@pytest.mark.slow
def test_console_script_reports_bad_input(tmp_path):
    """The installed ``hpcsys`` script: one line on stderr naming the file, exit status 2."""
    exe = Path(sys.executable).parent / "hpcsys"
    proc = subprocess.run(
        [str(exe), "fit", str(tmp_path / "absent.fits"), "-t", str(tmp_path / "t.fits"),
         "--out", str(tmp_path / "o.h5")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"hpcsys fit: {tmp_path / 'absent.fits'}: no such file"


def test_cli_counts_map_with_nested_mask_and_bad_template_pixels(sky, tmp_path):
    """Counts + mask: NESTED mask reordered, NaN template pixels masked and counted, a recovered."""
    obs, raw, mask = sky
    fp = mask > 0
    nbar = 100.0
    dhat = np.where(fp, obs, 0.0)
    counts = rng(11, "synthetic", 1).poisson(nbar * np.clip(1.0 + dhat, 0.0, None)).astype(float)
    t = raw.copy()
    bad = np.flatnonzero(fp)[::97][:40]
    t[2, bad] = np.nan
    hp.write_map(str(tmp_path / "n.fits"), counts, dtype=np.float64)
    hp.write_map(str(tmp_path / "t.fits"), t, dtype=np.float64)
    hp.write_map(str(tmp_path / "m.fits"), hp.reorder(mask, r2n=True), nest=True,
                 dtype=np.float64)
    code = _cli(["fit", str(tmp_path / "n.fits"), "-t", str(tmp_path / "t.fits"), "--counts",
                 "--mask", str(tmp_path / "m.fits"), "--methods", "OLS", "--likelihoods",
                 "gaussian", "--out", str(tmp_path / "o.h5")])
    assert code == 0
    res = read_fit_result(tmp_path / "o.h5")
    m = res.map
    assert m.counts and m.n_pixels == fp.sum() - bad.size
    np.testing.assert_array_equal(m.n_bad_templates, [0, 0, bad.size])
    assert m.mean_count == pytest.approx(counts[m.pixels].mean(), rel=1e-12)
    assert res.inputs[0].startswith("counts=") and res.inputs[-1].startswith("mask=")
    assert any("m.fits: ORDERING = NESTED" in n for n in m.notes)
    ols = res.method("OLS")
    # templates are re-standardised on the smaller footprint: a per std scales by sd_new/sd_old
    a_expect = A_TRUE * raw[:, m.pixels].std(axis=1) / raw[:, fp].std(axis=1)
    np.testing.assert_allclose(m.template_std, raw[:, m.pixels].std(axis=1), rtol=1e-12)
    assert np.all(np.abs(ols.a - a_expect) < 4 * ols.a_err), (ols.a, a_expect, ols.a_err)


def test_mcmc_chains_report_and_store_their_convergence(cli_run):
    """Every MCMC chain of the CLI run says why it stopped (printed and stored); the
    posterior summaries are in the file with the documented shapes."""
    out = cli_run[1]
    res = read_fit_result(out / "fit.h5")
    lines = format_fit_summary(res).splitlines()
    for name in ("MCMC-add", "MCMC-comb"):
        d = res.method(name).diagnostics
        assert d.stop_reason.startswith(("ESS target and R-hat threshold met", "step cap reached"))
        assert d.converged == d.stop_reason.startswith("ESS target")
        assert 300 <= d.n_iterations <= 2100 and (d.n_iterations - 300) % 200 == 0
        assert any(line.startswith(f"{name}: {d.stop_reason}") for line in lines)
    comb = res.method("MCMC-comb")
    assert np.all(comb.a_ci95[:, 0] < comb.a_median) and np.all(comb.a_median < comb.a_ci95[:, 1])
    assert np.all(comb.b_ess >= comb.diagnostics.effective_samples)
    assert np.all(np.isnan(res.method("OLS").a_ess))
    with h5py.File(out / "fit.h5", "r") as f:
        assert f["methods/5/a_ci95"].shape == (3, 2) and f["methods/5/b_ess"].shape == (3,)
        assert f["methods/5/diagnostics"].attrs["stop_reason"] == comb.diagnostics.stop_reason
        assert f["methods/5/diagnostics"].attrs["rhat_max"] == comb.diagnostics.rhat_max


@pytest.mark.slow
def test_default_fit_meets_its_ess_target():
    """Default settings, K = 5 templates on a KiDS-like lognormal map at NSIDE 64 (1496
    pixels, additive contamination): both chains are extended until every parameter has
    ``methods.mcmc_ess_target`` effective samples and split-R-hat <= ``mcmc_rhat_max``."""
    from _kids_mocks import kids_mocks

    nside, K = 64, 5
    fp, T, maps = kids_mocks(nside, 1, K)
    npix = 12 * nside**2
    obs = np.full(npix, hp.UNSEEN)
    obs[fp.pixels] = next(maps) + np.array([0.02, 0.0, -0.01, 0.0, 0.01]) @ T
    raw = np.zeros((K, npix))
    raw[:, fp.pixels] = T
    mask = np.zeros(npix)
    mask[fp.pixels] = 1.0
    res = fit_maps(obs, raw, mask=mask, methods=["MCMC-add", "MCMC-comb"], likelihoods=["gaussian"])
    st = res.settings
    assert st == dataclasses.replace(Config().methods, names=("MCMC-add", "MCMC-comb"),
                                     likelihoods=("gaussian",))
    for r in res.methods:
        d = r.diagnostics
        assert d.converged, d.message
        assert d.stop_reason.startswith("ESS target and R-hat threshold met")
        assert d.n_iterations <= st.mcmc_max_steps
        ess = np.concatenate([r.a_ess, r.b_ess if r.model == "combined" else []])
        assert np.all(ess >= st.mcmc_ess_target) and d.rhat_max <= st.mcmc_rhat_max
