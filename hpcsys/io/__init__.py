"""HDF5 input/output: per-task files, the aggregated results file and its readers.

A leaf package: it imports nothing from :mod:`hpcsys` but the version and
itself, and is generic over result dataclasses (the caller passes the class
to rebuild). The layout of ``results.h5`` is documented in
:mod:`hpcsys.io.schema`; :func:`open_results` is the way to read it.
"""

from hpcsys.io.results import (
    CalibrationData,
    Coordinates,
    DiagnosticsArrays,
    JackknifeArrays,
    LRTArrays,
    MethodArrays,
    MLEArrays,
    Provenance,
    ResultsFile,
    ResultsFormatError,
    ScenarioData,
    TemplateInfo,
    TimingArrays,
    diff_results,
    open_results,
    write_calibration,
    write_results,
    write_tables,
)
from hpcsys.io.schema import SCHEMA_VERSION
from hpcsys.io.serialize import SerializationError, read_dataclass, write_dataclass
from hpcsys.io.tables import FORMATS, RecoveryTable, Table2, Table3, render_report
from hpcsys.io.tasks import (
    TaskFileError,
    TaskStatus,
    clean_temporaries,
    config_hash,
    read_task,
    task_path,
    task_status,
    write_task,
)

__all__ = [
    "FORMATS",
    "SCHEMA_VERSION",
    "CalibrationData",
    "Coordinates",
    "DiagnosticsArrays",
    "JackknifeArrays",
    "LRTArrays",
    "MLEArrays",
    "MethodArrays",
    "Provenance",
    "RecoveryTable",
    "ResultsFile",
    "ResultsFormatError",
    "ScenarioData",
    "SerializationError",
    "Table2",
    "Table3",
    "TaskFileError",
    "TaskStatus",
    "TemplateInfo",
    "TimingArrays",
    "clean_temporaries",
    "config_hash",
    "diff_results",
    "open_results",
    "read_dataclass",
    "read_task",
    "render_report",
    "task_path",
    "task_status",
    "write_calibration",
    "write_dataclass",
    "write_results",
    "write_tables",
    "write_task",
]
