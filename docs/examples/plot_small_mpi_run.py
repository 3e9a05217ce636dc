"""
A small MPI run, read back
==========================

The whole suite on a tiny configuration: ``hpcsys run`` under ``mpiexec -n 2``
(serially if no ``mpiexec`` is installed) in a temporary directory, then the
aggregated ``results.h5`` is read back with :func:`hpcsys.io.open_results`,
the only supported reader. The configuration is ``configs/ci.yaml``'s kind of
run, cut down to two realisations of two scenarios and one method so that it
finishes in well under a minute (most of it is JAX compiling the fits once per
rank, which JAX's persistent compilation cache saves on later runs).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import yaml
from matplotlib import ticker

from hpcsys.io import open_results

config = {
    "run": {"name": "gallery", "n_realisations": 2, "scenarios": ["null", "combined"],
            "master_seed": 11},
    "sky": {"nside": 16, "footprint": "cap", "cap_radius_deg": 60.0},
    "templates": {"n_templates": 3},
    "contamination": {"additive_amplitude": 0.05, "multiplicative_amplitude": 0.1,
                      "zero_fraction": 0.0},
    "methods": {"names": ["OLS", "ISD-1"], "likelihoods": ["gaussian"],
                "mle_max_iter": 50},
    "twopoint": {"n_bins": 5, "theta_max_arcmin": 1200.0, "n_threads": 1},
    # a persistent JAX compilation cache makes later runs start in seconds
    "parallel": {"threads_per_rank": 1,
                 "compilation_cache_dir": str(Path(tempfile.gettempdir()) / "hpcsys-jax-cache")},
}
workdir = Path(tempfile.mkdtemp(prefix="hpcsys-gallery-"))
config["run"]["output_dir"] = str(workdir / "run")
cfg_path = workdir / "gallery.yaml"
cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))

# %%
# Run it. ``mpiexec`` from the virtual environment (pip ``mpich``) if present.
mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which(
    "mpiexec")
cmd = [sys.executable, "-m", "hpcsys", "run", str(cfg_path)]
if mpiexec:
    cmd = [mpiexec, "-n", "2", *cmd]
env = dict(os.environ, HDF5_USE_FILE_LOCKING="FALSE", XLA_PYTHON_CLIENT_PREALLOCATE="false")
proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
print(proc.stdout[-800:])
if proc.returncode != 0:
    raise RuntimeError(f"hpcsys run failed:\n{proc.stderr[-2000:]}")

# %%
# Read the results back: provenance, per-realisation arrays and the tables.
with open_results(workdir / "run" / "results.h5") as res:
    print(f"hpcsys {res.provenance.hpcsys_version}, {res.provenance.n_ranks} rank(s), "
          f"{res.provenance.n_tasks} tasks")
    theta = res.theta_arcmin / 60.0
    sc = res.scenario("combined")
    w_true, w_obs, w_corr = sc.w_true, sc.w_obs, sc.w_corrected
    methods = res.method_names
    t2 = res.table2()
    q = t2.lrt_pairs.index("additive/combined")
    print("additive vs combined rejected (Wilks) in",
          dict(zip(t2.scenarios, t2.fraction_wilks[:, q, 0].round(2))))

fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
ax.plot(theta, theta * w_true.mean(0), "k-", lw=2, label="true")
ax.plot(theta, theta * w_obs.mean(0), "--", color="#999999", lw=2, label="contaminated")
for i, (m, c) in enumerate(zip(methods, ("#E69F00", "#009E73"))):
    ax.plot(theta, theta * w_corr[:, i].mean(0), "-", color=c, label=f"corrected: {m}")
ax.set(xscale="log", xlabel=r"$\theta$ [deg]", ylabel=r"$\theta\,w(\theta)$ [deg]",
       title=f"combined scenario, mean of {w_true.shape[0]} realisations")
ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
ax.xaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
ax.legend()
plt.show()
shutil.rmtree(workdir, ignore_errors=True)
