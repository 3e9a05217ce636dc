"""MPI orchestration: communicators, per-rank resources, task distribution, the run driver.

The only package of hpcsys that imports :mod:`mpi4py` (lazily, and only when
a launcher started the process). Every entry point takes ``comm=``; without
MPI a :class:`SerialComm` runs the same code in one process.
"""

from hpcsys.parallel.comm import NodeLayout, SerialComm, node_layout, polite_barrier, world
from hpcsys.parallel.distribute import DynamicQueue, Task, cyclic_tasks, iterate_tasks, task_list
from hpcsys.parallel.estimate import CostEstimate, estimate_cost
from hpcsys.parallel.progress import Progress
from hpcsys.parallel.resources import RankResources, configure_rank, enable_precision
from hpcsys.parallel.runner import (
    FAULT_ENV,
    InjectedFault,
    RunSummary,
    TaskFailedError,
    pending_tasks,
    run_tasks,
)
from hpcsys.rundir import RunError

__all__ = [
    "FAULT_ENV",
    "CostEstimate",
    "DynamicQueue",
    "InjectedFault",
    "NodeLayout",
    "Progress",
    "RankResources",
    "RunError",
    "RunSummary",
    "SerialComm",
    "Task",
    "TaskFailedError",
    "configure_rank",
    "cyclic_tasks",
    "enable_precision",
    "estimate_cost",
    "iterate_tasks",
    "node_layout",
    "pending_tasks",
    "polite_barrier",
    "run_tasks",
    "task_list",
    "world",
]
