"""A real single-node SLURM: the jobs/ scripts submitted with sbatch, chained by dependency.

The set-up (tests/slurm/start.sh) writes a slurm.conf into a temporary directory and
starts munged, slurmctld and slurmd by hand (no systemd), as on a CI machine where
``.ci/run`` installed Debian's ``slurm-wlm`` and ``munge``; tests/slurm/stop.sh shuts
them down. Skipped, with the reason, when slurmctld is not installed or not root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcsys.io import open_results

REPO = Path(__file__).resolve().parent.parent
SLURM_DIR = Path(__file__).resolve().parent / "slurm"

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("slurmctld") is None
                       and not Path("/usr/sbin/slurmctld").exists(),
                       reason="slurmctld not installed (apt-get install slurm-wlm munge)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="starting munged/slurmctld by hand needs root"),
]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("slurm")
    p = subprocess.run(["bash", str(SLURM_DIR / "start.sh"), str(state)], capture_output=True,
                       text=True, timeout=120)
    try:
        assert p.returncode == 0, p.stderr + "".join(
            f.read_text() for f in (state / "log").glob("*.log"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_"))}
        env["SLURM_CONF"] = p.stdout.strip().splitlines()[-1]
        env["HPCSYS_VENV"] = str(Path(sys.executable).parent.parent)
        yield env
    finally:
        subprocess.run(["bash", str(SLURM_DIR / "stop.sh"), str(state)], timeout=120)


def _sbatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True,
                          timeout=900, env=env, cwd=REPO)


def test_cpu_job_then_chained_reduce(slurm: dict[str, str], tmp_path: Path,
                                     jax_cache_dir: Path) -> None:
    run_dir = tmp_path / "run"
    compute = _sbatch(slurm, "--ntasks=2", "--ntasks-per-node=2", "--cpus-per-task=1",
                      "--time=20", f"--output={tmp_path / 'compute.out'}", "jobs/cpu.sbatch",
                      "configs/ci.yaml", "--no-reduce", "--set", f"run.output_dir={run_dir}",
                      "--set", "run.n_realisations=2",
                      "--set", f"parallel.compilation_cache_dir={jax_cache_dir}")
    assert compute.returncode == 0, compute.stderr
    jid = compute.stdout.strip().split(";")[0]
    reduce = _sbatch(slurm, "--wait", f"--dependency=afterok:{jid}", "--time=20",
                     f"--output={tmp_path / 'reduce.out'}", "jobs/reduce.sbatch", str(run_dir))
    log = (tmp_path / "compute.out").read_text() if (tmp_path / "compute.out").exists() else ""
    assert reduce.returncode == 0, reduce.stderr + log[-3000:]
    state = subprocess.run(["scontrol", "show", "job", jid], capture_output=True, text=True,
                           env=slurm, timeout=60).stdout
    assert "JobState=COMPLETED" in state
    assert "8 tasks (0 resumed) on 2 rank(s)" in log
    with open_results(run_dir / "results.h5") as res:
        assert res.provenance.n_tasks == 8
        assert res.table2() is not None and res.table3() is not None
    info = (run_dir / "run_info.json").read_text()
    assert '"n_ranks": 2' in info
    assert "Table 2" in (tmp_path / "reduce.out").read_text()
