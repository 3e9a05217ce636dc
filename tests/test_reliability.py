"""Faults as an operator meets them (issue 12), each with the real thing.

A corrupted task file under a real ``mpiexec -n 2``; a real small file system
(tmpfs, else a loop-mounted image, else ``RLIMIT_FSIZE``) for the full disk;
real concurrent ``hpcsys run`` processes for the lock; a real SIGKILL for a
stale lock and its litter; a real SIGINT for Ctrl-C; real damaged FITS files.
The runs are configs/ci.yaml cut to 4 tasks (2 scenarios x 2 realisations,
OLS and ISD-1), NSIDE 16. What each fault did before and what hpcsys does now
is listed in docs/reliability.rst.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import healpy as hp
import numpy as np
import pytest

from hpcsys.cli import main
from hpcsys.io import diff_results, open_results, task_path, task_status
from hpcsys.io.atomic import temp_path

REPO = Path(__file__).resolve().parent.parent
CI = REPO / "configs" / "ci.yaml"
MPIEXEC = Path(sys.executable).parent / "mpiexec"
SMALL = ("--set", "run.scenarios=[null, additive]", "--set", "run.n_realisations=2",
         "--set", "methods.names=[OLS, ISD-1]")
N_SMALL = 4
NSIDE = 16


# --------------------------------------------------------------------------- helpers


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "HYDRA_"))}
    env.pop("HPCSYS_FAULT", None)
    return env


def _cmd(*args: str | Path, ranks: int = 1) -> list[str]:
    cmd = [sys.executable, "-m", "hpcsys", *map(str, args)]
    return [str(MPIEXEC), "-n", str(ranks), *cmd] if ranks > 1 else cmd


def _run_args(run_dir: Path, cache: Path, *extra: str) -> list[str]:
    return ["run", str(CI), "--set", f"run.output_dir={run_dir}", "--set",
            f"parallel.compilation_cache_dir={cache}", *SMALL, *extra]


def hpcsys(*args: str | Path, ranks: int = 1, timeout: float = 600,
           preexec=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(*args, ranks=ranks), capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=REPO, preexec_fn=preexec)


def _stalled_run(run_dir: Path, cache: Path) -> subprocess.Popen:
    """``hpcsys run`` that hangs in task null[1] (``HPCSYS_FAULT=stall@null:1``), alive
    and holding the lock until a signal ends it."""
    env = _env()
    env["HPCSYS_FAULT"] = "stall@null:1"
    return subprocess.Popen(_cmd(*_run_args(run_dir, cache)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                            preexec_fn=_interactive_sigint)


def _interactive_sigint() -> None:
    """SIGINT handled as in a foreground terminal process, even when the test suite runs as
    a background job (a non-interactive shell starts those with SIGINT ignored, and an
    ignored disposition survives exec: Python then never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if not ln.startswith("[hpcsys]")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _temporaries(root: Path) -> list[Path]:
    return sorted(root.rglob(".tmp*"))


@pytest.fixture(scope="module")
def cache(jax_cache_dir: Path) -> Path:
    """The session's JAX compilation cache, shared with the end-to-end tests."""
    return jax_cache_dir


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    """A run directory with all task files and no results.h5 (``--no-reduce``)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    p = hpcsys(*_run_args(run_dir, cache, "--no-reduce"))
    assert p.returncode == 0, p.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def reference(finished: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results.h5 of the undamaged run (reduced in this process: ``hpcsys reduce`` does
    no set-up of its own that a subprocess would add)."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    shutil.copytree(finished, run_dir)
    assert main(["reduce", str(run_dir)]) == 0
    return run_dir / "results.h5"


def _copy(finished: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    return run_dir


def _overwrite_middle(path: Path, n: int = 1024) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(b"\xde\xad\xbe\xef" * (n // 4))


# --------------------------------------------------------------------------- a small disk


@contextlib.contextmanager
def small_filesystem(size_kb: int) -> Iterator[tuple[Path, str]]:
    """A real file system of ``size_kb`` KiB: tmpfs, else a loop-mounted ext2 image.

    Yields ``(mount point, kind)``; skips the test (with the reason) when
    neither can be mounted (not root, no tmpfs/loop support).
    """
    top = Path(tempfile.mkdtemp(prefix="hpcsys-smallfs-"))
    mnt = top / "mnt"
    mnt.mkdir()
    kind = ""
    errors = []
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if p.returncode == 0:
        kind = "tmpfs"
    else:
        errors.append(f"tmpfs: {p.stderr.strip() or p.returncode}")
        img = top / "disk.img"
        with open(img, "wb") as fh:
            fh.truncate(max(size_kb, 64) * 1024)
        mk = subprocess.run(["mkfs.ext2", "-q", "-F", "-m", "0", str(img)],
                            capture_output=True, text=True)
        if mk.returncode == 0:
            p = subprocess.run(["mount", "-o", "loop", str(img), str(mnt)],
                               capture_output=True, text=True)
            if p.returncode == 0:
                kind = "loop"
            else:
                errors.append(f"loop: {p.stderr.strip()}")
        else:
            errors.append(f"mkfs.ext2: {mk.stderr.strip()}")
    if not kind:
        shutil.rmtree(top, ignore_errors=True)
        pytest.skip("cannot mount a small file system (" + "; ".join(errors) + ")")
    try:
        yield mnt, kind
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


def _fill(mnt: Path, leave_bytes: int) -> Path:
    """Fill ``mnt`` with a ballast file until ``leave_bytes`` remain free."""
    ballast = mnt / "ballast"
    free = shutil.disk_usage(mnt).free
    with open(ballast, "wb") as fh:
        fh.write(b"\0" * max(free - leave_bytes, 0))
        fh.flush()
        os.fsync(fh.fileno())
    return ballast


# --------------------------------------------------------------------------- 1. damaged task


@pytest.mark.skipif(not MPIEXEC.exists(), reason="mpiexec not installed in the venv")
def test_damaged_task_file_is_redone_under_mpiexec(finished: Path, reference: Path,
                                                   cache: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Bytes overwritten mid-file: reduce names the task, --resume on 2 ranks redoes it."""
    run_dir = _copy(finished, tmp_path)
    damaged = task_path(run_dir, "null", 1)
    _overwrite_middle(damaged)
    assert not task_status(damaged).complete  # the scan sees it, and does not raise
    assert main(["reduce", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "null[1]" in _one_line(err) and "--resume" in err
    p = hpcsys(*_run_args(run_dir, cache, "--resume"), ranks=2, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"note: {damaged}: damaged" in p.stderr and "the task is redone" in p.stderr
    assert f"({N_SMALL - 1} resumed)" in p.stdout
    assert diff_results(reference, run_dir / "results.h5") == ()


@pytest.mark.skipif(not MPIEXEC.exists(), reason="mpiexec not installed in the venv")
def test_failure_on_one_rank_outside_tasks_aborts_the_job(finished: Path, cache: Path,
                                                          tmp_path: Path) -> None:
    """Rank 0 fails alone in the prepare phase (templates.h5 is a directory): the job ends
    with a message naming the rank and the phase, instead of rank 1 waiting forever."""
    run_dir = _copy(finished, tmp_path)
    (run_dir / "templates.h5").unlink()
    (run_dir / "templates.h5").mkdir()
    task_path(run_dir, "additive", 0).unlink()  # something to do
    p = hpcsys(*_run_args(run_dir, cache, "--resume"), ranks=2, timeout=300)
    assert p.returncode != 0
    assert "hpcsys: prepare phase failed on rank 0 of 2" in p.stderr
    assert "aborting the job" in p.stderr
    assert not (run_dir / "results.h5").exists()


# --------------------------------------------------------------------------- 2. full disk


def test_full_disk_refused_by_check_and_run_before_computing(cache: Path) -> None:
    with small_filesystem(256) as (mnt, _):
        run_dir = mnt / "run"
        for command in ("check", "run"):
            args = _run_args(run_dir, cache)
            args[0] = command
            p = hpcsys(*args, timeout=300)
            assert p.returncode == 2, p.stderr
            line = _one_line(p.stderr)
            assert line.startswith(f"hpcsys {command}: {run_dir}: not enough free space (needs ~")
            assert "MB free" in line
        assert not (run_dir / "tasks").exists()


def test_full_disk_during_the_run_one_line_exit_2_no_partial_files(cache: Path) -> None:
    """The disk fills up (another process) while the tasks run: before, HDF5 crashed at
    close (rc 139, 'Can't destroy cache'); now one line naming the file, exit 2."""
    with small_filesystem(2048) as (mnt, kind):
        run_dir = mnt / "run"
        proc = subprocess.Popen(_cmd(*_run_args(run_dir, cache)), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
        assert proc.stdout is not None
        for line in proc.stdout:  # the space check has passed, the first task is computing
            if "tasks to run" in line:
                break
        _fill(mnt, 8192)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 2, (kind, err[-3000:])
        line = _one_line(err)
        assert line.startswith(f"hpcsys run: {run_dir}")
        assert "no space left on device (needs ~" in line or "not enough free space" in line
        assert "HDF5" not in err and "destroy cache" not in err
        assert _temporaries(run_dir) == []
        for f in (run_dir / "tasks").rglob("*.h5"):
            assert task_status(f).complete  # no partial file
        assert not (run_dir / "results.h5").exists()


def test_full_disk_at_reduce_and_fit(finished: Path, tmp_path: Path) -> None:
    files = _fit_files(tmp_path)
    with small_filesystem(1024) as (mnt, _):
        run_dir = mnt / "run"
        shutil.copytree(finished, run_dir)
        _fill(mnt, 4096)
        p = hpcsys("reduce", run_dir, timeout=300)
        assert p.returncode == 2, p.stderr
        line = _one_line(p.stderr)
        assert line.startswith(f"hpcsys reduce: {run_dir / 'results.h5'}: ")
        assert "needs ~" in line and not (run_dir / "results.h5").exists()
        out = mnt / "fit.h5"
        p = hpcsys("fit", files["map"], "-t", files["t"], "--methods", "OLS", "ISD-1",
                   "--likelihoods", "gaussian", "--weights-fits", mnt / "w.fits", "--out", out,
                   timeout=300)
        assert p.returncode == 2, p.stderr
        line = _one_line(p.stderr)
        assert line.startswith("hpcsys fit: --weights-fits: ") or line.startswith(
            "hpcsys fit: --out: "), line
        assert "needs ~" in line and "Can't" not in p.stderr
        assert not out.exists() and not (mnt / "w.fits").exists()
        assert _temporaries(mnt) == []


def test_file_size_limit_is_reported_like_a_full_disk(tmp_path: Path) -> None:
    """RLIMIT_FSIZE (a batch system's file-size limit): EFBIG, reported as one line."""
    files = _fit_files(tmp_path)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    p = hpcsys("fit", files["map"], "-t", files["t"], "--methods", "OLS", "--likelihoods",
               "gaussian", "--out", tmp_path / "o.h5", timeout=300, preexec=limit)
    assert p.returncode == 2, p.stderr
    assert _one_line(p.stderr).startswith(f"hpcsys fit: --out: {tmp_path / 'o.h5'}: file size")
    assert not (tmp_path / "o.h5").exists() and _temporaries(tmp_path) == []


# --------------------------------------------------------------------------- 3. lock


def _wait_for_stall(run_dir: Path, proc: subprocess.Popen, timeout: float = 300) -> str:
    """Wait until a :func:`_stalled_run` holds the lock and hangs in task null[1]."""
    t0 = time.monotonic()
    lock = run_dir / ".lock"
    while time.monotonic() - t0 < timeout:
        if task_path(run_dir, "null", 0).exists() and lock.read_text().strip():
            return lock.read_text()
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.2)
    raise AssertionError("the run did not reach task null[1]")


def test_second_run_refused_stale_lock_taken_over(cache: Path, tmp_path: Path,
                                                  reference: Path) -> None:
    run_dir = tmp_path / "run"
    first = _stalled_run(run_dir, cache)
    try:
        _wait_for_stall(run_dir, first)
        live_temp = run_dir / f".tmp-results-{first.pid}.h5"  # as if the live run wrote it
        live_temp.write_bytes(b"in progress")
        second = hpcsys(*_run_args(run_dir, cache, "--resume"), timeout=300)
        assert second.returncode == 2, second.stderr
        line = _one_line(second.stderr)
        assert f"in use by another hpcsys run (pid {first.pid} on host " in line
        assert live_temp.exists()  # the refused run touched nothing
    finally:
        first.send_signal(signal.SIGKILL)  # the holder dies without releasing
        first.communicate(timeout=60)
    assert str(first.pid) in (run_dir / ".lock").read_text()  # its record stays behind
    live_temp.rename(run_dir / f".tmp-results-{first.pid}.h5")  # now a dead run's litter
    third = hpcsys(*_run_args(run_dir, cache, "--resume"), timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"took over the lock of a run that is gone (pid {first.pid} on host" in third.stderr
    assert "removed 1 temporary file(s) of killed runs" in third.stderr
    assert _temporaries(run_dir) == [] and (run_dir / ".lock").read_text() == ""
    assert diff_results(reference, run_dir / "results.h5") == ()


# --------------------------------------------------------------------------- 4. litter


def test_reduce_removes_litter_of_killed_runs(finished: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = _copy(finished, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that is certainly gone
    litter = [run_dir / f".tmp-results-{dead.pid}.h5",
              task_path(run_dir, "null", 0).with_name(f".tmp-00000-{dead.pid}.h5")]
    for p in litter:
        shutil.copy(task_path(run_dir, "null", 0), p)
    assert main(["reduce", str(run_dir)]) == 0
    assert "removed 2 temporary file(s) of killed runs" in capsys.readouterr().err
    assert not any(x.exists() for x in litter) and _temporaries(run_dir) == []
    with open_results(run_dir / "results.h5") as res:
        assert res.provenance.n_tasks == N_SMALL


# --------------------------------------------------------------------------- 5. fit outputs


def _fit_files(tmp: Path) -> dict[str, Path]:
    g = np.random.default_rng(12)
    n = 12 * NSIDE**2
    t = g.standard_normal(n)
    delta = 0.1 * g.standard_normal(n) + 0.02 * t
    files = {"map": tmp / "delta.fits", "t": tmp / "t.fits", "zero": tmp / "zero.fits"}
    hp.write_map(str(files["map"]), delta, dtype=np.float64, overwrite=True)
    hp.write_map(str(files["t"]), t, dtype=np.float64, overwrite=True)
    hp.write_map(str(files["zero"]), np.zeros(n), dtype=np.float64, overwrite=True)
    return files


@pytest.mark.parametrize("case", ["out in /proc", "out a directory", "weights in /proc",
                                  "weights a directory", "weights same as out"])
def test_fit_outputs_validated_before_computing(case: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The map is unusable (all zero): an output error first proves nothing was computed."""
    files = _fit_files(tmp_path)
    out, weights = tmp_path / "o.h5", None
    (tmp_path / "d").mkdir()
    option = "--out"
    if case == "out in /proc":
        out = Path("/proc/hpcsys-o.h5")
    elif case == "out a directory":
        out = tmp_path / "d"
    else:
        option = "--weights-fits"
        weights = {"weights in /proc": Path("/proc/w.fits"), "weights a directory":
                   tmp_path / "d", "weights same as out": out}[case]
    argv = ["fit", str(files["zero"]), "-t", str(files["t"]), "--methods", "ISD-1",
            "--out", str(out)] + (["--weights-fits", str(weights)] if weights else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hpcsys fit: {option} ") and "\n" not in err
    assert "constant map" not in err
    assert _temporaries(tmp_path) == [] and not (tmp_path / "o.h5").exists()


# --------------------------------------------------------------------------- 6. degenerate


def test_degenerate_maps_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = _fit_files(tmp_path)
    huge = tmp_path / "huge.fits"
    hp.write_map(str(huge), 1e300 * hp.read_map(str(files["map"])), dtype=np.float64)
    counts = tmp_path / "counts.fits"
    mask = tmp_path / "mask.fits"
    n = 12 * NSIDE**2
    hp.write_map(str(counts), np.random.default_rng(3).poisson(20.0, n) + 0.25,
                 dtype=np.float64)
    hp.write_map(str(mask), np.ones(n), dtype=np.float64)
    base = ["-t", str(files["t"]), "--methods", "OLS", "--likelihoods", "gaussian", "--out",
            str(tmp_path / "o.h5")]
    for path, expected in ((files["zero"], "every footprint pixel is 0 (a constant map)"),
                           (huge, "not an overdensity")):
        assert main(["fit", str(path), *base]) == 2
        err = capsys.readouterr().err.strip()
        assert err == err.splitlines()[0] and expected in err and str(path) in err
    assert main(["fit", str(counts), "--counts", "--mask", str(mask), *base]) == 0
    err = capsys.readouterr().err
    assert f"note: {counts}: {n} of {n} footprint pixels hold non-integer counts" in err


@pytest.mark.parametrize(("content", "expected"), [
    (b"run:\n  name: caf\xe9\n", "not UTF-8 text (byte 0xe9 at line 2)"),
    (b"run:\n  n_realisations: 3\n  n_realisations: 5\n",
     "duplicate key 'n_realisations' (first at line 2) at line 3"),
    (b"sky:\n  nside: 16\nsky:\n  nside: 32\n", "duplicate key 'sky'"),
    (b"# nothing\n\n", "empty config file"),
    (b"", "empty config file"),
])
def test_bad_config_files_one_line(content: bytes, expected: str, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(content)
    assert main(["check", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"hpcsys check: {cfg}: " + err.split(": ", 2)[2] and expected in err
    assert "\n" not in err


# --------------------------------------------------------------------------- 7. manners


def test_ctrl_c_one_line_exit_130(cache: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _stalled_run(run_dir, cache)
    _wait_for_stall(run_dir, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-3000:]
    assert _one_line(err) == "hpcsys run: interrupted"
    assert (run_dir / ".lock").read_text() == ""  # released on the way out


def test_corrupt_fits_header_not_echoed(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    files = _fit_files(tmp_path)
    raw = bytearray(files["t"].read_bytes())
    card = 2880 + 80 * 3  # the fourth card of the table header
    raw[card:card + 48] = b"\x1b[31m\x07" + bytes(range(0x80, 0xab))
    bad = tmp_path / "bad_header.fits"
    bad.write_bytes(bytes(raw))
    assert main(["fit", str(files["map"]), "-t", str(bad), "--out", str(tmp_path / "o.h5")]) == 2
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert err.startswith(f"hpcsys fit: {bad}: ") and "\n" not in err
    assert err.isascii() and err.isprintable() and "\x1b" not in cap.out + cap.err


def test_report_says_what_the_file_is(finished: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    files = _fit_files(tmp_path)
    data = files["map"].read_bytes()
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(data[: len(data) // 2])
    import astropy.io.fits as fits

    text = tmp_path / "text.fits"
    col = fits.Column(name="NAME", format="8A", array=np.array(["galaxy"] * 10))
    fits.BinTableHDU.from_columns([col]).writeto(text)
    cases = {task_path(finished, "null", 1): "an hpcsys task file (task null[1] of a run)",
             truncated: "a truncated FITS file",
             text: "a FITS table of text columns",
             files["map"]: "a FITS file"}
    for path, what in cases.items():
        assert main(["report", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"hpcsys report: {path}: {what}") and "\n" not in err
        assert "expected an hpcsys results file" in err
    # hpcsys fit names them too
    for path, what in ((truncated, "truncated FITS file"), (text, "holds text")):
        assert main(["fit", str(files["map"]), "-t", str(path), "--out",
                     str(tmp_path / "o.h5")]) == 2
        err = capsys.readouterr().err.strip()
        assert what in err and "\n" not in err


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    """The helper itself: an exception while writing leaves neither file nor temporary."""
    from hpcsys.io.atomic import atomic_h5, verify_checksum

    target = tmp_path / "x.h5"
    with pytest.raises(RuntimeError, match="boom"), atomic_h5(target) as f:
        f["a"] = np.arange(3)
        raise RuntimeError("boom")
    assert not target.exists() and not temp_path(target).exists()
    with atomic_h5(target, checksum=True) as f:
        f["a"] = np.arange(3.0)
    assert verify_checksum(target) is True
    with h5py.File(target, "r") as f:
        np.testing.assert_array_equal(f["a"][()], [0.0, 1.0, 2.0])
