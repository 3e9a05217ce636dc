"""HDF5 round trips: per-task files, the aggregated results file, tables, readers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from _results_synthetic import LIKES, METHODS, B, K, assert_same, coords, provenance, random_result

from hpcsys.io import (
    SCHEMA_VERSION,
    CalibrationData,
    RecoveryTable,
    ResultsFormatError,
    SerializationError,
    Table2,
    Table3,
    TaskFileError,
    TemplateInfo,
    clean_temporaries,
    config_hash,
    open_results,
    read_task,
    render_report,
    task_path,
    task_status,
    write_calibration,
    write_dataclass,
    write_results,
    write_tables,
    write_task,
)
from hpcsys.io.tables import FORMATS
from hpcsys.pipeline import RealisationResult


def test_task_file_round_trip_is_exact(tmp_path: Path) -> None:
    res = random_result("additive", 3)
    h = config_hash("x: 1\n")
    p = write_task(task_path(tmp_path, "additive", 3), res, scenario="additive", index=3,
                   cfg_hash=h, rank=1)
    assert p == tmp_path / "tasks" / "additive" / "00003.h5"
    assert task_status(p).complete and task_status(p).config_hash == h
    back = read_task(p, RealisationResult, cfg_hash=h)
    assert_same(res, back)
    # nothing temporary left behind
    assert [q.name for q in p.parent.iterdir()] == ["00003.h5"]


def test_task_status_detects_torn_and_foreign_files(tmp_path: Path) -> None:
    p = task_path(tmp_path, "null", 0)
    assert task_status(p).reason == "missing"
    p.parent.mkdir(parents=True)
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 50)  # torn: HDF5 signature, no content
    st = task_status(p)
    assert not st.complete and st.reason.startswith("unreadable")
    with h5py.File(p, "w") as f:  # opens, but was never completed
        f.create_group("result")
    assert task_status(p).reason == "no completion attribute"
    with pytest.raises(TaskFileError, match="not complete"):
        read_task(p, RealisationResult)
    write_task(p, random_result("null", 0), scenario="null", index=0, cfg_hash="aaaa")
    with pytest.raises(TaskFileError, match="different configuration"):
        read_task(p, RealisationResult, cfg_hash="bbbb")


def test_clean_temporaries_removes_leftovers(tmp_path: Path) -> None:
    d = tmp_path / "tasks" / "null"
    d.mkdir(parents=True)
    (d / ".tmp-00001-123.h5").write_bytes(b"junk")
    (d / "00000.h5").write_bytes(b"kept")
    assert clean_temporaries(tmp_path) == 1
    assert sorted(q.name for q in d.iterdir()) == ["00000.h5"]


def test_serializer_rejects_unsupported_values(tmp_path: Path) -> None:
    @dataclass
    class Bad:
        x: object

    with h5py.File(tmp_path / "b.h5", "w") as f, pytest.raises(SerializationError, match=r"Bad\.x"):
        write_dataclass(f.create_group("g"), Bad(x={"a": 1}))


def test_aggregated_file_stacks_tasks_in_index_order(tmp_path: Path) -> None:
    recs = {"null": [random_result("null", i) for i in (2, 0, 1)],
            "additive": [random_result("additive", i) for i in (1, 0)]}
    xi = np.random.default_rng(1).normal(size=(B, K, K))
    tmpl = TemplateInfo(tuple(f"t{i}" for i in range(K)), np.eye(K), xi)
    path = write_results(tmp_path / "results.h5", recs, coords=coords(),
                         provenance=provenance(5), templates=tmpl)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["results.h5"]
    with open_results(path) as res:
        assert res.scenarios == ("null", "additive")
        assert res.method_names == METHODS
        assert res.provenance == provenance(5)
        np.testing.assert_array_equal(res.theta_arcmin, recs["null"][0].theta_arcmin)
        t = res.templates()
        assert t is not None and t.names == tmpl.names
        np.testing.assert_array_equal(t.xi, xi)
        for name, rs in recs.items():
            rs = sorted(rs, key=lambda r: r.index)
            sc = res.scenario(name)
            assert sc.n_realisations == len(rs)
            np.testing.assert_array_equal(sc.index, [r.index for r in rs])
            for fld in ("seed_words", "a_true", "w_obs", "w_corrected", "w_remeasured"):
                np.testing.assert_array_equal(getattr(sc, fld),
                                              np.stack([getattr(r, fld) for r in rs]))
            np.testing.assert_array_equal(sc.lrt.statistic,
                                          np.stack([r.lrt.statistic for r in rs]))
            np.testing.assert_array_equal(sc.mle.a, np.stack([r.mle.a for r in rs]))
            # the honest errors and Wald tests (schema 3) round-trip under their names
            for grp, fld in (("mle", "cov"), ("mle", "a_err_indep"), ("mle", "b_err_indep"),
                             ("lrt", "wald_statistic"), ("lrt", "wald_pvalue"),
                             ("lrt", "wald_dof")):
                np.testing.assert_array_equal(getattr(getattr(sc, grp), fld), np.stack(
                    [getattr(getattr(r, grp), fld) for r in rs]), err_msg=f"{grp}/{fld}")
            ols = METHODS.index("OLS")
            for fld in ("a_err_indep", "b_err_indep", "cov_indep"):
                np.testing.assert_array_equal(getattr(sc.methods["OLS"], fld), np.stack(
                    [getattr(r.methods[ols], fld) for r in rs]), err_msg=fld)
            np.testing.assert_array_equal(sc.timings.stage_seconds,
                                          np.stack([r.timings.stage_seconds for r in rs]))
            for m, mname in enumerate(METHODS):
                ma = sc.methods[mname]
                assert ma.model == rs[0].methods[m].model
                np.testing.assert_array_equal(ma.a_mean, np.stack([r.methods[m].a_mean for r in rs]))
                for fld in ("a_median", "b_median", "a_ess", "b_ess", "a_ci68", "b_ci68",
                            "a_ci95", "b_ci95"):  # MCMC posterior summaries, nan elsewhere
                    np.testing.assert_array_equal(
                        getattr(ma, fld), np.stack([getattr(r.methods[m], fld) for r in rs]))
                np.testing.assert_array_equal(
                    ma.diagnostics.rhat_max, [r.methods[m].diagnostics.rhat_max for r in rs])
                assert list(ma.diagnostics.stop_reason) == [
                    r.methods[m].diagnostics.stop_reason for r in rs]
                np.testing.assert_array_equal(
                    ma.diagnostics.converged, [r.methods[m].diagnostics.converged for r in rs])
                assert list(ma.diagnostics.message) == [r.methods[m].diagnostics.message
                                                        for r in rs]
        assert res.table2() is None
    # dimension scales and skipped per-pixel maps
    with h5py.File(path, "r") as f:
        def scales(name: str) -> list[str]:
            ds = f[name]
            return [d[0].name for d in ds.dims]

        assert scales("scenarios/null/w_corrected") == [
            "/scenarios/null/index", "/method", "/theta_arcmin"]
        assert scales("scenarios/null/mle/a") == [
            "/scenarios/null/index", "/fit_model", "/likelihood", "/template"]
        assert scales("scenarios/null/methods/OLS/cov") == [
            "/scenarios/null/index", "/parameter", "/parameter2"]
        assert scales("scenarios/null/methods/OLS/cov_indep") == [
            "/scenarios/null/index", "/parameter", "/parameter2"]
        assert scales("scenarios/null/mle/cov") == [
            "/scenarios/null/index", "/fit_model", "/likelihood", "/parameter", "/parameter2"]
        assert scales("scenarios/null/lrt/wald_pvalue") == [
            "/scenarios/null/index", "/lrt_pair", "/likelihood"]
        assert scales("scenarios/null/lrt/wald_dof") == ["/scenarios/null/index", "/lrt_pair"]
        assert scales("scenarios/null/methods/MCMC-comb/a_ci95") == [
            "/scenarios/null/index", "/template", "/bound"]
        assert list(f["bound"].asstr()[()]) == ["lower", "upper"]
        assert "dims" not in f["scenarios/null/w_corrected"].attrs
        assert "weights" not in f["scenarios/null/methods/OLS"]
        assert "corrected" not in f["scenarios/null/methods/OLS"]


def test_aggregate_refuses_inconsistent_tasks(tmp_path: Path) -> None:
    a, b = random_result("null", 0), random_result("null", 1)
    b = dataclasses.replace(b, theta_arcmin=b.theta_arcmin * 2)
    with pytest.raises(SerializationError, match="theta_arcmin"):
        write_results(tmp_path / "r.h5", {"null": [a, b]}, coords=coords(),
                      provenance=provenance(2))
    assert not any(tmp_path.iterdir())


def _tables(S: int = 2, Q: int = 5, L: int = 2, E: int = 4, P: int = 6):
    rng = np.random.default_rng(5)
    t2 = Table2(("null", "additive")[:S], tuple(f"p{q}" for q in range(Q)), LIKES[:L],
                np.array([10, 12][:S]), 0.05, 99, rng.random((S, Q, L)),
                *(rng.random((S, Q, L)) for _ in range(6)),
                tuple(f"source {q}" for q in range(Q)), rng.random((S, Q)) < 0.5,
                rng.random((Q, L)), rng.random((Q, L)))
    t3 = Table3(("null", "additive")[:S], ("uncorrected", "OLS", "ISD-1", "MCMC-comb")[:E],
                np.array([10, 12][:S]), B, rng.random(S), rng.random(S),
                *(rng.normal(size=(S, E)) for _ in range(4)),
                tuple(f"note {s}" for s in range(S)))
    rec = RecoveryTable(("null", "additive")[:S], METHODS, tuple(f"a_{i}" for i in range(P)),
                        np.array([10, 12][:S]), *(rng.random((S, 3, P)) for _ in range(10)))
    return t2, t3, rec


def test_calibration_round_trip(tmp_path: Path) -> None:
    """/calibration is written with its scales and read back bit for bit."""
    rng = np.random.default_rng(9)
    path = write_results(tmp_path / "results.h5", {"null": [random_result("null", 0)]},
                         coords=coords(), provenance=provenance(1))
    S, Q, L, M = len(coords().scenario), len(coords().lrt_pair), len(coords().likelihood), 7
    cal = CalibrationData(
        scenarios=coords().scenario, bootstrap_models=("additive", "multiplicative"),
        index=np.arange(M), seed_words=rng.integers(0, 2**32, (M, 4), dtype=np.uint32),
        statistic=rng.chisquare(3, (M, S, Q, L)), null_pvalue=rng.random((M, Q, L)),
        bootstrap_a=rng.normal(size=(S, 2, K)), bootstrap_b=rng.normal(size=(S, 2, K)))
    with open_results(path) as res:
        assert res.calibration() is None
    write_calibration(path, cal)
    write_calibration(path, cal)  # replacing is allowed
    with open_results(path) as res:
        back = res.calibration()
    assert back.n_calibration == M
    assert_same(back, cal)
    with h5py.File(path, "r") as f:
        ds = f["calibration/statistic"]
        assert [d[0].name for d in ds.dims] == ["/calibration/calibration_index", "/scenario",
                                                "/lrt_pair", "/likelihood"]


def test_tables_round_trip_and_render(tmp_path: Path) -> None:
    path = write_results(tmp_path / "results.h5", {"null": [random_result("null", 0)]},
                         coords=coords(), provenance=provenance(1))
    t2, t3, rec = _tables()
    write_tables(path, t2, t3, rec)
    write_tables(path, t2, t3, rec)  # replacing is allowed
    with open_results(path) as res:
        assert_same(res.table2(), t2)
        assert_same(res.table3(), t3)
        assert_same(res.recovery(), rec)
    for fmt in FORMATS:
        text = render_report(t2, t3, rec, fmt)
        assert "Table 2" in text and "Table 3" in text and "recovery" in text
        # one line per (scenario, likelihood, pair) in Table 2
        assert text.count("additive") >= 2 * 5
    assert r"\begin{tabular}" in render_report(t2, None, None, "latex")
    assert render_report(None, t3, None, "csv").splitlines()[1].startswith("scenario,N,")


def test_reader_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ResultsFormatError, match="no such results file"):
        open_results(tmp_path / "missing.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(ResultsFormatError, match="not a readable HDF5"):
        open_results(tmp_path / "junk.h5")
    path = write_results(tmp_path / "r.h5", {"null": [random_result("null", 0)]},
                         coords=coords(), provenance=provenance(1))
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(ResultsFormatError, match="schema version 99"):
        open_results(path)
    for old in (1, 2):  # 2: independent-pixel a_err/cov, no Wald test (issue 13)
        with h5py.File(path, "r+") as f:
            f.attrs["schema_version"] = old
        with pytest.raises(ResultsFormatError, match=rf"schema version {old}, this hpcsys "
                                                     r"reads only version 3 \(the layout changed"):
            open_results(path)
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = SCHEMA_VERSION
    with open_results(path) as res, pytest.raises(ResultsFormatError, match="no scenario"):
        res.scenario("combined")


def test_read_task_can_skip_per_pixel_maps(tmp_path: Path) -> None:
    from hpcsys.io.schema import SKIPPED_FIELDS

    res = random_result("combined", 1)
    p = write_task(task_path(tmp_path, "combined", 1), res, scenario="combined", index=1,
                   cfg_hash="h")
    light = read_task(p, RealisationResult, skip=SKIPPED_FIELDS)
    for m_full, m_light in zip(res.methods, light.methods):
        assert m_light.weights.shape == (0,) and m_light.corrected.shape == (0,)
        np.testing.assert_array_equal(m_light.a, m_full.a)
        assert_same(m_light.diagnostics, m_full.diagnostics)
    np.testing.assert_array_equal(light.w_corrected, res.w_corrected)


def test_task_of_an_older_schema_is_incomplete(tmp_path: Path) -> None:
    """A task file of another result layout is redone, never read into the new classes."""
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:  # as schema 1 wrote them: no checksum block
        f.attrs["complete"] = True
        f.attrs["schema_version"] = 1
        f.attrs["config_hash"] = "abc"
        f.create_group("result").create_dataset("w_true", data=np.zeros(3))
    st = task_status(path)
    assert not st.complete
    assert st.reason == f"written with result schema 1, this hpcsys writes {SCHEMA_VERSION}"

