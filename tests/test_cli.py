"""The command line: every bad config gives one clear line and exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hpcsys import cli

REPO = Path(__file__).resolve().parent.parent
CI = REPO / "configs" / "ci.yaml"


def _write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# (case id, YAML text or None for "no file", --set overrides, expected fragment of the message)
BAD = [
    ("missing-file", None, [], "config file not found"),
    ("not-yaml", "run: [unclosed\n", [], "not valid YAML"),
    ("top-level-list", "- 1\n- 2\n", [], "top level must be a mapping"),
    ("unknown-section", "runn:\n  name: x\n", [], "runn: unknown section"),
    ("unknown-key", "sky:\n  nsid: 16\n", [], "sky.nsid: unknown key"),
    ("nside-not-power-of-two", "sky:\n  nside: 100\n", [], "sky.nside: must be a power of two"),
    ("wrong-type", "run:\n  n_realisations: many\n", [], "run.n_realisations: expected an integer"),
    ("unknown-scenario", "run:\n  scenarios: [additive, banana]\n", [], "run.scenarios"),
    ("unknown-method", "methods:\n  names: [OLS, LASSO]\n", [], "methods.names"),
    ("burn-in", "methods:\n  mcmc_steps: 10\n  mcmc_burn_in: 10\n", [], "methods.mcmc_burn_in"),
    ("corr-matrix-size", "templates:\n  n_templates: 2\n  correlation_matrix: [[1.0]]\n", [],
     "templates.correlation_matrix"),
    ("mask-missing", "sky:\n  footprint: file\n  mask_file: /no/such/mask.fits\n", [],
     "sky.mask_file: file not found"),
    ("theta-range", "twopoint:\n  theta_min_arcmin: 500\n  theta_max_arcmin: 300\n", [],
     "twopoint.theta_min_arcmin"),
    ("alpha", "analysis:\n  alpha: 1.5\n", [], "analysis.alpha"),
    ("distribution", "parallel:\n  distribution: random\n", [], "parallel.distribution"),
    ("threads", "parallel:\n  threads_per_rank: 0\n", [], "parallel.threads_per_rank"),
    ("bad-override", "{}\n", ["sky.nside"], "--set sky.nside: expected section.key=value"),
    ("override-value", "{}\n", ["sky.nside=3"], "sky.nside: must be a power of two"),
]


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize(("case", "text", "overrides", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    command: str, case: str, text: str | None,
                                    overrides: list[str], fragment: str) -> None:
    path = tmp_path / "absent.yaml" if text is None else _write(tmp_path, text)
    argv = [command, str(path)] + [a for o in overrides for a in ("--set", o)]
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"hpcsys {command}: ")
    assert fragment in lines[0]
    assert "Traceback" not in err and out == ""


def test_unreadable_mask_is_caught_by_check(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    mask = _write(tmp_path, "this is not a FITS file", "mask.fits")
    cfg = _write(tmp_path, f"sky:\n  nside: 16\n  footprint: file\n  mask_file: {mask}\n")
    assert cli.main(["check", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sky.mask_file" in err[0] and "mask.fits" in err[0]


@pytest.mark.slow
def test_unreadable_mask_found_at_run_time(tmp_path: Path) -> None:
    """``run`` discovers the broken mask when building the run context: one line, exit 2."""
    mask = _write(tmp_path, "this is not a FITS file", "mask.fits")
    cfg = _write(tmp_path, f"run:\n  output_dir: {tmp_path / 'run'}\n"
                           f"sky:\n  nside: 16\n  footprint: file\n  mask_file: {mask}\n")
    p = subprocess.run([sys.executable, "-m", "hpcsys", "run", str(cfg)], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpcsys run: ")
    assert "sky.mask_file" in lines[0] and "mask.fits" in lines[0]


def test_check_prints_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", str(CI), "--set", "run.n_realisations=5"]) == 0
    out = capsys.readouterr().out
    assert "tasks: 4 scenarios x 5 realisations = 20" in out
    assert "core-hours" in out and "memory per rank" in out
    assert "output: runs/ci" in out


def test_report_and_reduce_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["report", str(tmp_path / "none.h5")]) == 2
    assert "no such results file" in capsys.readouterr().err
    assert cli.main(["reduce", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_parser_does_not_import_jax_or_mpi() -> None:
    """Threads and GPUs are set before JAX starts: building the CLI must not import it."""
    code = ("import sys; from hpcsys import cli; cli.build_parser(); "
            "print('jax' in sys.modules, 'mpi4py' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stdout.split() == ["False", "False"], p.stderr


@pytest.mark.slow
def test_module_entry_point_and_version() -> None:
    p = subprocess.run([sys.executable, "-m", "hpcsys", "--version"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("hpcsys ")
