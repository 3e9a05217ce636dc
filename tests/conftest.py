"""Shared test set-up: float64 JAX (as the entry points enable it), a per-session JAX
compilation cache outside the source tree, and MPI safety.

Compilation cache
-----------------
Every test session compiles into one JAX persistent cache in a fresh temporary
directory (``HPCSYS_TEST_JAX_CACHE``), removed when the session ends. It is set
through JAX's own environment variables before JAX is imported, so this process
*and every subprocess a test starts* (``hpcsys run``, ``hpcsys fit``, a fresh
interpreter) share it: a kernel compiled once in the session is loaded, not
recompiled, by later processes, and nothing is ever written into the checkout.
A caller may set ``HPCSYS_TEST_JAX_CACHE`` itself (``make test-mpi`` does, so the
ranks of both MPI sessions share one cache); it is then left in place.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

_CACHE_VAR = "HPCSYS_TEST_JAX_CACHE"
if not os.environ.get(_CACHE_VAR):
    os.environ[_CACHE_VAR] = tempfile.mkdtemp(prefix="hpcsys-test-jax-cache-")
    atexit.register(shutil.rmtree, os.environ[_CACHE_VAR], ignore_errors=True)
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ[_CACHE_VAR]
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="session")
def jax_cache_dir() -> Path:
    """The session's JAX compilation cache (pass it as ``parallel.compilation_cache_dir``)."""
    return Path(os.environ[_CACHE_VAR])


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report):
    """Under mpiexec, a failed test on one rank aborts all ranks instead of hanging them."""
    if report.failed and os.environ.get("PMI_RANK") is not None:
        try:
            from mpi4py import MPI

            if MPI.Is_initialized() and MPI.COMM_WORLD.Get_size() > 1:
                print(f"\n[rank {MPI.COMM_WORLD.Get_rank()}] test failed: {report.nodeid}; aborting",
                      flush=True)
                MPI.COMM_WORLD.Abort(1)
        except ImportError:
            pass


@pytest.fixture(scope="session")
def ci_runs(tmp_path_factory: pytest.TempPathFactory):
    """The session's end-to-end configs/ci.yaml runs (tests/_ci_runs.py), each started once
    and shared by the tests that inspect it."""
    from _ci_runs import CIRuns

    return CIRuns(tmp_path_factory.mktemp("ci_runs"))
