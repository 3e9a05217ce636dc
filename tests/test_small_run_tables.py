"""A 12-realisation run end to end: calibration tasks, resume, and finite Tables 2-3.

One small run (configs/ci.yaml at NSIDE 16, 12 realisations of two scenarios,
12 angular bins so that N = 12 < B + 2, 20 calibration mocks) through
``hpcsys run`` in this process:

* the calibration task kind writes ``tasks/calibration/*.h5`` and ``/calibration``
  of ``results.h5`` (M = 20, disjoint seed words from the evaluated tasks);
* a calibration file deleted and ``--resume`` redoes only that task and gives
  the same results file bit for bit;
* ``hpcsys report`` prints finite Table 3 entries (Ledoit-Wolf shrinkage at
  N = 12) with the covariance note, and no ``nan`` without a reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from hpcsys import cli
from hpcsys.io import diff_results, open_results

REPO = Path(__file__).resolve().parent.parent
CI = REPO / "configs" / "ci.yaml"
M = 20

pytestmark = pytest.mark.slow  # 24 tasks and 20 calibration tasks, ~2 CPU minutes


def _argv(run_dir: Path, *extra: str) -> list[str]:
    sets = {"run.output_dir": run_dir, "run.n_realisations": 12,
            "run.scenarios": "[null, combined]", "methods.names": "[OLS, ISD-1]",
            "twopoint.n_bins": 12, "analysis.calibration_realisations": M,
            "parallel.bind_cores": "false",
            "parallel.compilation_cache_dir": os.environ["HPCSYS_TEST_JAX_CACHE"]}
    out = ["run", str(CI)]
    for k, v in sets.items():
        out += ["--set", f"{k}={v}"]
    return [*out, *extra]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("small") / "run"
    assert cli.main(_argv(d)) == 0
    return d


def test_calibration_tasks_land_in_the_results(run_dir: Path) -> None:
    assert len(list((run_dir / "tasks" / "calibration").glob("*.h5"))) == M
    with open_results(run_dir / "results.h5") as res:
        cal = res.calibration()
        t2 = res.table2()
        words = np.concatenate([res.scenario(s).seed_words for s in res.scenarios])
    assert cal.n_calibration == M and t2.n_calibration == M
    assert cal.statistic.shape == (M, 2, 5, 2) and np.all(np.isfinite(cal.statistic))
    ev = {tuple(w[:2]) for w in words} | {tuple(w[2:]) for w in words}
    assert not ev & ({tuple(w[:2]) for w in cal.seed_words}
                     | {tuple(w[2:]) for w in cal.seed_words})
    # the combined scenario's bootstrap point is its mean additive fit
    with open_results(run_dir / "results.h5") as res:
        a_fit = res.scenario("combined").mle.a[:, 1, 0].mean(axis=0)
    np.testing.assert_allclose(cal.bootstrap_a[1, 0], a_fit, rtol=1e-12)
    assert np.all(np.isfinite(t2.fraction_calibrated))


def test_resume_redoes_a_deleted_calibration_task_only(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "tasks" / "calibration" / "00007.h5").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in (copy / "tasks" / "calibration").glob("*.h5")}
    assert cli.main(_argv(copy, "--resume")) == 0
    after = {p.name: p.stat().st_mtime_ns for p in (copy / "tasks" / "calibration").glob("*.h5")}
    assert set(after) - set(before) == {"00007.h5"}
    assert all(after[k] == v for k, v in before.items())
    assert diff_results(run_dir / "results.h5", copy / "results.h5") == ()


def test_report_of_a_12_realisation_run_has_finite_table3(
        run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert cli.main(["report", str(run_dir / "results.h5")]) == 0
    out = capsys.readouterr().out
    t3 = out[out.index("Table 3"):out.index("Parameter recovery")]
    rows = [ln for ln in t3.splitlines() if ln.startswith(("null ", "combined "))]
    assert len(rows) == 6
    for ln in rows:
        cells = ln.split()
        if cells[2] == "ISD-1":  # no Eq. 16 terms: the note says so
            assert "nan" not in " ".join(cells[3:6])
        else:
            assert "nan" not in ln, ln
    assert "Covariance (null): Ledoit-Wolf shrinkage" in t3
    assert "N = 12 <= B + 2 = 14" in t3
    assert "No-cross-terms column n/a for ISD-1" in t3
    assert "Calibration set: M = 20" in out
