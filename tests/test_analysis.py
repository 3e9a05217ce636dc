"""analysis/: every table and figure from a small real run, numbers checked independently.

A session fixture runs ``hpcsys run`` on ``configs/ci.yaml`` (serial, NSIDE 16,
3 templates, short chains) with 6 realisations per scenario and 3 angular bins
(enough for Table 3's Hartlap inverse) in a temporary directory, then
``analysis/make_all.py`` on its ``results.h5``. The table files are compared
with values recomputed here directly from the per-realisation datasets with
h5py and NumPy, following the definitions of ``docs/science/tables.rst`` and
:mod:`hpcsys.reduction`'s docstring, not its code.
"""

from __future__ import annotations

import csv
import importlib
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
ANALYSIS = ROOT / "analysis"
N_REAL = 6
N_BINS = 3
ALPHA = 0.05

#: The run analysed by these tests: configs/ci.yaml with enough realisations for the
#: Hartlap-corrected covariance of Table 3 (N > bins + 2).
CI_CONFIG = ROOT / "configs" / "ci.yaml"
N_CAL = 19  # calibration mocks: the smallest M that can reject at alpha = 0.05
OVERRIDES = (f"run.n_realisations={N_REAL}", f"twopoint.n_bins={N_BINS}",
             f"analysis.alpha={ALPHA}", f"analysis.calibration_realisations={N_CAL}")

EXPECTED = [
    "table2.md", "table2.csv", "table2.tex",
    "table3.md", "table3.csv", "table3.tex",
    "recovery.md", "recovery.csv", "recovery.tex",
    *[f"{stem}.{ext}" for stem in ("wtheta", "lrt_histograms", "amplitude_bias",
                                   "pulls_coverage", "templates", "pixel_histogram",
                                   "population") for ext in ("png", "pdf")],
    "population.csv", "validation.md",
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HDF5_USE_FILE_LOCKING="FALSE", XLA_PYTHON_CLIENT_PREALLOCATE="false",
               MPLBACKEND="Agg")
    env.pop("PMI_RANK", None)
    return env


@pytest.fixture(scope="session")
def run_h5(tmp_path_factory, jax_cache_dir) -> Path:
    """results.h5 of a small serial run."""
    d = tmp_path_factory.mktemp("analysis_run")
    out = d / "run"
    cmd = [sys.executable, "-m", "hpcsys", "run", str(CI_CONFIG), "--set", f"run.output_dir={out}"]
    for o in (*OVERRIDES, f"parallel.compilation_cache_dir={jax_cache_dir}"):
        cmd += ["--set", o]
    proc = subprocess.run(cmd, cwd=d, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    path = out / "results.h5"
    assert path.is_file()
    return path


@pytest.fixture(scope="session")
def analysis_dir(run_h5, tmp_path_factory) -> Path:
    """Output directory of analysis/make_all.py on the run (run in-process)."""
    out = tmp_path_factory.mktemp("analysis_out")
    # analysis/ is a directory of scripts that import each other, as when run as
    # ``python analysis/make_all.py``: put it on the path for this import only
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ANALYSIS))
        make_all = importlib.import_module("make_all")
        # two worker processes (the pool path; validation then runs here)
        rc = make_all.main([str(run_h5), "--out", str(out), "--jobs", "2"])
    assert rc == 0
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return list(csv.DictReader(lines))


def _num(s: str) -> float:
    return float("nan") if s == "nan" else float(s)


def _close(reported: str, value: float, decimals: int) -> bool:
    """A rounded table entry equals the recomputed value (both nan counts as equal)."""
    r = _num(reported)
    if not np.isfinite(value):
        return not np.isfinite(r)
    return abs(r - value) <= 0.5 * 10.0**-decimals + 1e-9


def _labels(f: h5py.File, axis: str) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else str(s) for s in f[axis][()]]


# --------------------------------------------------------------------------- outputs


@pytest.mark.slow  # reads the outputs of the hpcsys run subprocess
def test_every_output_is_written(analysis_dir):
    for name in EXPECTED:
        p = analysis_dir / name
        assert p.is_file() and p.stat().st_size > 0, name
    for p in analysis_dir.glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p.name
    for p in analysis_dir.glob("*.pdf"):
        assert p.read_bytes()[:5] == b"%PDF-", p.name
    assert r"\begin{tabular}" in (analysis_dir / "table2.tex").read_text()
    assert "|---" in (analysis_dir / "table3.md").read_text()


# --------------------------------------------------------------------------- Table 2


@pytest.mark.slow  # reads the outputs of the hpcsys run subprocess
def test_table2_matches_recomputation(run_h5, analysis_dir):
    """Wilks: fraction of p < alpha; calibrated: p_emp = (1 + #{lam_cal >= lam})/(1 + M) <= alpha.

    ``lam_cal`` from the calibration set (``/calibration/statistic``), never the
    evaluated realisations.
    """
    rows = _rows(analysis_dir / "table2.csv")
    with h5py.File(run_h5, "r") as f:
        pairs, liks = _labels(f, "lrt_pair"), _labels(f, "likelihood")
        scen = _labels(f, "scenario")
        lam_cal = f["calibration/statistic"][()]
        assert lam_cal.shape[0] == N_CAL
        checked = 0
        for row in rows:
            sc = f["scenarios"][row["scenario"]]
            q, li = pairs.index(row["test"]), liks.index(row["likelihood"])
            lam, pv = sc["lrt/statistic"][:, q, li], sc["lrt/pvalue"][:, q, li]
            ok = np.isfinite(lam)
            n = int(ok.sum())
            assert int(row["N"]) == lam.shape[0]
            fw = np.mean(pv[ok] < ALPHA)
            # the Wilks p-value itself is chi2.sf(lambda, dof)
            dof = sc["lrt/dof"][0, q]
            np.testing.assert_allclose(pv[ok], stats.chi2.sf(lam[ok], dof), rtol=1e-6, atol=1e-12)
            l0 = lam_cal[:, scen.index(row["scenario"]), q, li]
            l0 = l0[np.isfinite(l0)]
            p_emp = (1.0 + (l0[None, :] >= lam[ok][:, None]).sum(axis=1)) / (1.0 + l0.size)
            fc = np.mean(p_emp <= ALPHA)
            assert _close(row["wilks"], fw, 3), row
            assert _close(row["wilks_err"], np.sqrt(fw * (1 - fw) / n), 3), row
            assert _close(row["calibrated"], fc, 3), row
            assert _close(row["calibrated_err"], np.sqrt(fc * (1 - fc) / n), 3), row
            checked += 1
        assert checked == len(f["scenarios"]) * len(pairs) * len(liks)


# --------------------------------------------------------------------------- Table 3


def _amplitude_bias(w_true: np.ndarray, w_x: np.ndarray) -> tuple[float, float]:
    """Berlfein+24 Eqs. 24-26: mock covariance, Hartlap inverse, GLS amplitude, paired dA."""
    N, B = w_true.shape
    C = np.cov(w_true, rowvar=False, ddof=1)
    Cinv = (N - B - 2.0) / (N - 1.0) * np.linalg.inv(C)
    w_ref = w_true.mean(axis=0)
    F = w_ref @ Cinv @ w_ref
    sigma_A = F**-0.5

    def A(w: np.ndarray) -> np.ndarray:
        return (w @ Cinv @ w_ref) / F

    d = (A(w_x) - A(w_true)) / sigma_A
    d = d[np.isfinite(d)]
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


@pytest.mark.slow  # reads the outputs of the hpcsys run subprocess
def test_table3_matches_recomputation(run_h5, analysis_dir):
    rows = _rows(analysis_dir / "table3.csv")
    with h5py.File(run_h5, "r") as f:
        methods = _labels(f, "method")
        checked = 0
        for row in rows:
            sc = f["scenarios"][row["scenario"]]
            wt = sc["w_true"][()]
            assert wt.shape == (N_REAL, N_BINS)
            est = row["estimator"]
            for key, err_key, field in (("dA_over_sigma", "error", "w_corrected"),
                                        ("dA_over_sigma_diag", "error_diag",
                                         "w_corrected_diag")):
                wx = sc["w_obs"][()] if est == "uncorrected" else (
                    sc[field][:, methods.index(est)])
                if not np.all(np.isfinite(wx)):
                    assert row[key] == "nan"
                    continue
                m, e = _amplitude_bias(wt, wx)
                assert _close(row[key], m, 3), (row, m)
                assert _close(row[err_key], e, 3), (row, e)
            checked += 1
        assert checked == len(f["scenarios"]) * (1 + len(methods))


# --------------------------------------------------------------------------- recovery


@pytest.mark.slow  # reads the outputs of the hpcsys run subprocess
def test_recovery_matches_recomputation(run_h5, analysis_dir):
    rows = _rows(analysis_dir / "recovery.csv")
    assert rows
    z95 = stats.norm.ppf(0.975)
    with h5py.File(run_h5, "r") as f:
        for row in rows:
            sc = f["scenarios"][row["scenario"]]
            g = sc["methods"][row["method"]]
            block, i = row["parameter"].split("_")
            x = g[block][:, int(i)]
            e = g[f"{block}_err"][:, int(i)]
            t = sc[f"{block}_true"][:, int(i)]
            n = x.size
            scatter = x.std(ddof=1)
            assert _close(row["scatter"], scatter, 4)
            assert _close(row["bias_over_error"], (x - t).mean() / (scatter / np.sqrt(n)), 2)
            good = np.isfinite(e) & (e > 0)
            if good.any():
                pulls = (x - t)[good] / e[good]
                assert _close(row["coverage68"], np.mean(np.abs(pulls) < 1.0), 2)
                assert _close(row["coverage95"], np.mean(np.abs(pulls) < z95), 2)
                assert _close(row["error_ratio"], scatter / e[good].mean(), 2)
            else:
                assert row["coverage68"] == "nan"


# --------------------------------------------------------------------------- summary


@pytest.mark.slow  # reads the outputs of the hpcsys run subprocess
def test_validation_summary_states_recomputed_numbers(run_h5, analysis_dir):
    text = (analysis_dir / "validation.md").read_text()
    for heading in ("## 1.", "## 2.", "## 3.", "## 4."):
        assert heading in text
    with h5py.File(run_h5, "r") as f:
        pairs, liks = _labels(f, "lrt_pair"), _labels(f, "likelihood")
        pv = f["scenarios/null/lrt/pvalue"][()]
    q, li = pairs.index("additive/combined"), liks.index("gaussian")
    fw = np.mean(pv[:, q, li] < ALPHA)
    line = next(ln for ln in text.splitlines()
                if ln.startswith("| null | additive/combined | gaussian |"))
    assert "| size |" in line
    assert "leave-one-out" not in text and f"M = {N_CAL} mocks" in text
    assert f"{fw:.3f} ± {np.sqrt(fw * (1 - fw) / N_REAL):.3f}" in line
    assert "slope of log(Laplace width) vs log(N)" in text


@pytest.mark.slow  # reads the outputs of the hpcsys run subprocess
def test_population_width_of_the_run_shrinks_as_inverse_sqrt_n(analysis_dir):
    lines = (analysis_dir / "population.csv").read_text().splitlines()
    header = next(ln for ln in lines if ln.startswith("# side note, slope"))
    slope, err = (float(v) for v in header.split(":")[1].split("(")[0].split("±"))
    assert abs(slope + 0.5) < 3.0 * err, header
    assert any(ln.startswith("# scatter between groups / jackknife width") for ln in lines)


@pytest.mark.slow  # reads the outputs of the hpcsys run subprocess
def test_scripts_run_alone_and_refuse_bad_input(run_h5, tmp_path):
    env = _env()
    proc = subprocess.run([sys.executable, str(ANALYSIS / "table2.py"), str(run_h5),
                           "--out", str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "table2.md").stat().st_size > 0
    missing = tmp_path / "missing.h5"
    proc = subprocess.run([sys.executable, str(ANALYSIS / "fig_bias.py"), str(missing),
                           "--out", str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and "missing.h5" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run([sys.executable, str(ANALYSIS / "make_all.py"), str(run_h5),
                           "--out", str(tmp_path), "--jobs", "0"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --jobs must be >= 1, got 0"


# --------------------------------------------------------------------------- netCDF view


def test_results_open_in_xarray_with_named_dimensions(run_h5):
    """The dimension scales of results.h5 give xarray (h5netcdf) labelled axes."""
    import xarray as xr  # the test extra installs xarray and h5netcdf
    with xr.open_dataset(run_h5, engine="h5netcdf", phony_dims="access") as root:
        assert {"method", "likelihood", "fit_model", "lrt_pair", "template",
                "theta_arcmin"} <= set(root.sizes)
        methods = [str(m) for m in root["method"].values]
    with h5py.File(run_h5, "r") as f:
        assert methods == _labels(f, "method")
    with xr.open_dataset(run_h5, group="scenarios/additive", engine="h5netcdf",
                         phony_dims="access") as sc:
        assert sc["w_corrected"].dims == ("index", "method", "theta_arcmin")
        assert sc["a_true"].dims == ("index", "template")
        np.testing.assert_array_equal(sc["index"].values, np.arange(sc.sizes["index"]))
    with xr.open_dataset(run_h5, group="scenarios/additive/mle", engine="h5netcdf",
                         phony_dims="access") as mle:
        assert mle["a"].dims == ("index", "fit_model", "likelihood", "template")
    with xr.open_dataset(run_h5, group="scenarios/additive/methods/OLS", engine="h5netcdf",
                         phony_dims="access") as ols:
        assert ols["cov"].dims == ("index", "parameter", "parameter2")
        assert not [d for d in ols.sizes if str(d).startswith("phony")]
