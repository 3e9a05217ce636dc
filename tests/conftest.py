"""Shared test set-up: float64 JAX (as the entry points enable it) and MPI safety."""

from __future__ import annotations

import os

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

import jax
import pytest

jax.config.update("jax_enable_x64", True)


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
