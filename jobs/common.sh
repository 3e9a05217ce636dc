# Sourced by the jobs/*.sbatch scripts: site set-up, in one place. Adapt it here.
#
#   * Modules: uncomment and edit for your site, e.g.
#       module load python/3.11 openmpi/4.1   # then build mpi4py against it
#     With the pip "mpich" wheel (the default install) nothing needs loading.
#   * Python: HPCSYS_VENV (default: .venv of the submit directory) is activated.
#   * MPI under srun: HPCSYS_SRUN_MPI picks the PMI plugin: pmi2 for MPICH (pip
#     wheel or site MPICH/Intel MPI), pmix for Open MPI. "srun --mpi=list" shows
#     what your SLURM offers.
#   * HDF5 on network file systems: file locking is switched off (one writer per file).
# module load ...
set -euo pipefail
if [ -n "${SLURM_SUBMIT_DIR:-}" ]; then cd "$SLURM_SUBMIT_DIR"; fi
HPCSYS_VENV=${HPCSYS_VENV:-$PWD/.venv}
if [ -f "$HPCSYS_VENV/bin/activate" ]; then
  # shellcheck disable=SC1091
  source "$HPCSYS_VENV/bin/activate"
fi
export HPCSYS_SRUN_MPI=${HPCSYS_SRUN_MPI:-pmi2}
export HDF5_USE_FILE_LOCKING=FALSE
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
# Per-rank threads = the CPUs SLURM gave each task; hpcsys exports them to
# OpenMP, BLAS, XLA and TreeCorr before JAX starts.
export HPCSYS_THREADS=${SLURM_CPUS_PER_TASK:-1}
export OMP_NUM_THREADS=$HPCSYS_THREADS
echo "[job ${SLURM_JOB_ID:-?}] $(date -u +%FT%TZ) on ${SLURM_JOB_NODELIST:-$(hostname)}:" \
     "${SLURM_NTASKS:-1} ranks x ${HPCSYS_THREADS} threads, python $(command -v python)"
