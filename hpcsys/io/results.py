"""The aggregated results file: writer (rank 0) and typed readers.

:func:`write_results` stacks per-realisation result dataclasses into the
layout of :mod:`hpcsys.io.schema`; :func:`write_tables` adds the summary
tables; :func:`open_results` returns a :class:`ResultsFile` whose typed
accessors are the only way the analysis code reads a run::

    from hpcsys.io import open_results

    with open_results("runs/quick/results.h5") as res:
        res.scenarios                       # ('null', 'additive', ...)
        res.method_names                    # ('OLS', 'ElasticNet', ...)
        sc = res.scenario("additive")       # ScenarioData
        sc.w_obs.shape                      # (N, B)
        sc.methods["OLS"].a                 # (N, K)
        sc.lrt.statistic                    # (N, Q, L)
        res.table3().mean_dA_over_sigma     # (S, E)

The layout follows the nesting of the per-realisation dataclasses
generically (a nested dataclass is a sub-group, a tuple of named dataclasses
a sub-group per name); the reader rebuilds the stacked dataclasses below
from their field names. Axes are HDF5 dimension scales, so xarray opens a
group with labelled dimensions::

    xarray.open_dataset("results.h5", group="scenarios/additive", engine="h5netcdf")
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hpcsys.io.atomic import atomic_h5
from hpcsys.io.result_types import (
    CalibrationData,
    Coordinates,
    DiagnosticsArrays,
    JackknifeArrays,
    LRTArrays,
    MethodArrays,
    MLEArrays,
    Provenance,
    ResultsFormatError,
    ScenarioData,
    TemplateInfo,
    TimingArrays,
)
from hpcsys.io.schema import (
    BOUNDS,
    REALISATION_AXIS,
    SCHEMA_VERSION,
    SKIPPED_FIELDS,
    dims_for,
    is_volatile,
)
from hpcsys.io.serialize import SerializationError, read_dataclass, write_dataclass
from hpcsys.io.tables import RecoveryTable, Table2, Table3

__all__ = [
    "CalibrationData",
    "Coordinates",
    "DiagnosticsArrays",
    "JackknifeArrays",
    "LRTArrays",
    "MLEArrays",
    "MethodArrays",
    "Provenance",
    "ResultsFile",
    "ResultsFormatError",
    "ScenarioData",
    "TemplateInfo",
    "TimingArrays",
    "diff_results",
    "open_results",
    "utc_now",
    "write_calibration",
    "write_results",
    "write_tables",
]

_STR = h5py.string_dtype("utf-8")
#: Fields identical in every task, stored once at the root (as dimension scales).
_HOISTED: tuple[str, ...] = ("theta_arcmin",)


def _older_schema(path: Path, version: int) -> ResultsFormatError:
    return ResultsFormatError(
        f"{path}: schema version {version}, this hpcsys reads only version {SCHEMA_VERSION} "
        f"(the layout changed: run the configuration again with this hpcsys version)")



# --------------------------------------------------------------------------- writing


def _is_dc(v: Any) -> bool:
    return dataclasses.is_dataclass(v) and not isinstance(v, type)


def _collect(obj: Any, base: str, out: dict[str, list[Any]]) -> None:
    """Leaf values of one record by path: the HDF5 layout is the dataclass nesting."""
    for f in dataclasses.fields(obj):
        if f.name in SKIPPED_FIELDS or (not base and f.name in _HOISTED):
            continue
        v = getattr(obj, f.name)
        path = f"{base}/{f.name}" if base else f.name
        if _is_dc(v):
            _collect(v, path, out)
        elif isinstance(v, (tuple, list)) and v and all(_is_dc(x) for x in v):
            for i, item in enumerate(v):
                _collect(item, f"{path}/{getattr(item, 'name', i)}", out)
        elif v is not None:
            out.setdefault(path, []).append(v)


def _attach_scales(ds: h5py.Dataset, dims: tuple[str, ...], scales: Mapping[str, h5py.Dataset]
                   ) -> None:
    """Attach the dimension scale of every named axis (unnamed axes stay phony)."""
    for i, name in enumerate(dims):
        scale = scales.get(name)
        if scale is not None and scale.shape[0] == ds.shape[i]:
            ds.dims[i].attach_scale(scale)


def _write_stack(group: h5py.Group, rel: str, values: list[Any], n: int,
                 scales: dict[str, h5py.Dataset]) -> None:
    if len(values) != n:
        raise SerializationError(f"{group.name}/{rel}: present in {len(values)} of {n} tasks")
    parent, _, leaf = rel.rpartition("/")
    g = group.require_group(parent) if parent else group
    first = values[0]
    if isinstance(first, str):
        if all(v == first for v in values):
            g.attrs[leaf] = first
            return
        ds = g.create_dataset(leaf, data=np.array(values, dtype=object), dtype=_STR)
    elif isinstance(first, np.ndarray):
        shapes = {v.shape for v in values}
        if len(shapes) != 1:
            raise SerializationError(f"{group.name}/{rel}: shapes differ between tasks {shapes}")
        arr = np.stack(values, axis=0)
        if arr.dtype.kind in "OUS":
            ds = g.create_dataset(leaf, data=arr.astype(object), dtype=_STR)
        else:
            ds = g.create_dataset(leaf, data=arr)
    elif isinstance(first, (bool, np.bool_)):
        ds = g.create_dataset(leaf, data=np.array(values, dtype=bool))
    elif isinstance(first, (int, np.integer)):
        ds = g.create_dataset(leaf, data=np.array(values, dtype=np.int64))
    elif isinstance(first, (float, np.floating)):
        ds = g.create_dataset(leaf, data=np.array(values, dtype=np.float64))
    else:
        raise SerializationError(f"{group.name}/{rel}: cannot stack {type(first).__name__}")
    if rel == REALISATION_AXIS:
        ds.make_scale(REALISATION_AXIS)
        scales[REALISATION_AXIS] = ds
    else:
        _attach_scales(ds, dims_for(rel, ds.ndim), scales)


def _write_strings(group: h5py.Group, name: str, values: Sequence[str]) -> None:
    group.create_dataset(name, data=np.array(list(values), dtype=object), dtype=_STR)


def write_results(
    path: str | Path,
    records: Mapping[str, Sequence[Any]],
    *,
    coords: Coordinates,
    provenance: Provenance,
    templates: TemplateInfo | None = None,
) -> Path:
    """Write the aggregated file from per-realisation result dataclasses (atomically).

    Parameters
    ----------
    path : str or Path
        Destination, e.g. ``RUN_DIR/results.h5``; replaced atomically.
    records : mapping of scenario name to sequence of dataclass instances
        Each instance has an ``index`` field; arrays are stacked along a new
        axis 0 in index order. The layout is the nesting of the records: a
        nested dataclass field becomes a sub-group of its name, a tuple of
        named dataclasses (methods) ``<field>/<name>/``; a string equal in
        every record becomes an attribute; per-pixel fields
        (:data:`hpcsys.io.schema.SKIPPED_FIELDS`) are left out.
    coords : Coordinates
    provenance : Provenance
    templates : TemplateInfo, optional

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_h5(path) as f:
        for k, v in dataclasses.asdict(provenance).items():
            if isinstance(v, tuple):
                f.attrs.create(k, data=np.array(list(v), dtype=object), dtype=_STR)
            else:
                f.attrs[k] = v
        scales: dict[str, h5py.Dataset] = {}
        for k, v in (*dataclasses.asdict(coords).items(), ("estimator", coords.estimator),
                     ("parameter", coords.parameter), ("template2", coords.template),
                     ("parameter2", coords.parameter), ("bound", BOUNDS)):
            _write_strings(f, k, v)
            f[k].make_scale(k)
            scales[k] = f[k]
        hoisted: dict[str, np.ndarray] = {}
        sg = f.create_group("scenarios")
        for scenario in coords.scenario:
            recs = sorted(records.get(scenario, ()), key=lambda r: int(r.index))
            if not recs:
                continue
            for name in _HOISTED:
                for r in recs:
                    v = np.asarray(getattr(r, name))
                    if name not in hoisted:
                        hoisted[name] = v
                        ds = f.create_dataset(name, data=v)
                        ds.make_scale(name)
                        scales[name] = ds
                    elif v.shape != hoisted[name].shape or not np.array_equal(v, hoisted[name]):
                        raise SerializationError(
                            f"{name}: differs between tasks (scenario {scenario}, "
                            f"index {r.index})")
            if "word" not in scales:
                words = np.asarray(recs[0].seed_words).shape[0]
                scales["word"] = f.create_dataset("word", data=np.arange(words))
                scales["word"].make_scale("word")
            out: dict[str, list[Any]] = {}
            for r in recs:
                _collect(r, "", out)
            g = sg.create_group(scenario)
            local = dict(scales)  # plus this scenario's realisation axis, written first
            for rel in sorted(out, key=lambda r: r != REALISATION_AXIS):
                _write_stack(g, rel, out[rel], len(recs), local)
        if templates is not None:
            tg = f.create_group("templates")
            _write_strings(tg, "names", templates.names)
            _attach_scales(tg["names"], ("template",), scales)
            _attach_scales(tg.create_dataset("correlation", data=templates.correlation),
                           ("template", "template2"), scales)
            if templates.xi is not None:
                _attach_scales(tg.create_dataset("xi", data=templates.xi),
                               ("theta_arcmin", "template", "template2"), scales)
        f.attrs["complete"] = True
    return path


#: Axis names of the datasets under ``/calibration`` (:mod:`hpcsys.io.schema`).
_CAL_DIMS: dict[str, tuple[str, ...]] = {
    "seed_words": ("calibration_index", "word"),
    "statistic": ("calibration_index", "scenario", "lrt_pair", "likelihood"),
    "null_pvalue": ("calibration_index", "lrt_pair", "likelihood"),
    "bootstrap_a": ("scenario", "bootstrap_model", "template"),
    "bootstrap_b": ("scenario", "bootstrap_model", "template"),
}


def write_calibration(path: str | Path, cal: CalibrationData) -> None:
    """Add (or replace) ``/calibration`` of an existing results file (atomically)."""
    with atomic_h5(path, "r+") as f:
        if "calibration" in f:
            del f["calibration"]
        g = f.create_group("calibration")
        g.attrs["n_calibration"] = cal.n_calibration
        scales = {k: f[k] for k in ("scenario", "lrt_pair", "likelihood", "template", "word")
                  if k in f}
        ix = g.create_dataset("calibration_index", data=np.asarray(cal.index, dtype=np.int64))
        ix.make_scale("calibration_index")
        _write_strings(g, "bootstrap_model", cal.bootstrap_models)
        g["bootstrap_model"].make_scale("bootstrap_model")
        scales.update(calibration_index=ix, bootstrap_model=g["bootstrap_model"])
        _write_strings(g, "scenario_label", cal.scenarios)
        for name, dims in _CAL_DIMS.items():
            _attach_scales(g.create_dataset(name, data=getattr(cal, name)), dims, scales)


def write_tables(path: str | Path, table2: Table2 | None, table3: Table3 | None,
                 recovery: RecoveryTable | None) -> None:
    """Add (or replace) ``/tables`` of an existing results file (atomically)."""
    with atomic_h5(path, "r+") as f:
        tg = f.require_group("tables")
        for name, t in (("table2", table2), ("table3", table3), ("recovery", recovery)):
            if name in tg:
                del tg[name]
            if t is not None:
                write_dataclass(tg.create_group(name), t)


# --------------------------------------------------------------------------- reading


def _strs(ds: h5py.Dataset) -> tuple[str, ...]:
    return tuple(str(x) for x in ds.asstr()[()])


def _attr_str(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _attr_strs(raw: Any) -> tuple[str, ...]:
    return tuple(_attr_str(x) for x in np.atleast_1d(raw))


class ResultsFile:
    """Read access to ``results.h5`` (use :func:`open_results`; a context manager).

    Attributes
    ----------
    path : Path
    provenance : Provenance
    coords : Coordinates
    theta_arcmin : ndarray, shape (B,)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ResultsFormatError(f"{self.path}: no such results file")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as exc:
            raise ResultsFormatError(f"{self.path}: not a readable HDF5 file ({exc})") from None
        try:
            a = self._f.attrs
            version = int(a.get("schema_version", -1))
            if version != SCHEMA_VERSION:
                raise _older_schema(self.path, version)
            self.provenance = Provenance(
                schema_version=version,
                hpcsys_version=_attr_str(a["hpcsys_version"]),
                git_hash=_attr_str(a["git_hash"]),
                config_text=_attr_str(a["config_text"]),
                config_source=_attr_str(a["config_source"]),
                master_seed=int(a["master_seed"]),
                created=_attr_str(a["created"]),
                n_ranks=int(a["n_ranks"]),
                hosts=_attr_strs(a["hosts"]),
                devices=_attr_strs(a["devices"]),
                n_tasks=int(a["n_tasks"]),
            )
            self.coords = Coordinates(**{
                fld.name: _strs(self._f[fld.name]) for fld in dataclasses.fields(Coordinates)})
            self.theta_arcmin = self._f["theta_arcmin"][()]
        except KeyError as exc:
            self._f.close()
            raise ResultsFormatError(f"{self.path}: missing {exc}") from None
        except ResultsFormatError:
            self._f.close()
            raise

    # -- context management
    def close(self) -> None:
        """Close the underlying HDF5 file."""
        self._f.close()

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- labels
    @property
    def scenarios(self) -> tuple[str, ...]:
        """Scenarios present in the file, in run order."""
        return tuple(s for s in self.coords.scenario if s in self._f["scenarios"])

    @property
    def method_names(self) -> tuple[str, ...]:
        """Method names (the ``method`` axis)."""
        return self.coords.method

    @property
    def likelihoods(self) -> tuple[str, ...]:
        """Likelihood names (the ``likelihood`` axis)."""
        return self.coords.likelihood

    @property
    def lrt_pairs(self) -> tuple[str, ...]:
        """LRT pairs ``"null/alt"`` (the ``lrt_pair`` axis)."""
        return self.coords.lrt_pair

    @property
    def fit_models(self) -> tuple[str, ...]:
        """Models of the MLE fits (the ``fit_model`` axis)."""
        return self.coords.fit_model

    @property
    def stages(self) -> tuple[str, ...]:
        """Timed stages (the ``stage`` axis)."""
        return self.coords.stage

    @property
    def config_text(self) -> str:
        """The resolved YAML configuration of the run."""
        return self.provenance.config_text

    # -- data
    def templates(self) -> TemplateInfo | None:
        """Template names, correlation matrix and xi_ij(theta) (None if not stored)."""
        if "templates" not in self._f:
            return None
        g = self._f["templates"]
        xi = g["xi"][()] if "xi" in g else None
        return TemplateInfo(_strs(g["names"]), g["correlation"][()], xi)

    def scenario(self, name: str) -> ScenarioData:
        """All per-realisation arrays of scenario ``name``."""
        if name not in self.scenarios:
            raise ResultsFormatError(
                f"{self.path}: no scenario {name!r}; present: {', '.join(self.scenarios)}")
        g = self._f["scenarios"][name]
        try:
            return _read_stacked(g, ScenarioData, g[REALISATION_AXIS].shape[0],
                                 {"methods": self.method_names}, scenario=name)
        except KeyError as exc:
            raise ResultsFormatError(f"{self.path}: scenario {name!r} lacks {exc}") from None

    def calibration(self) -> CalibrationData | None:
        """The calibration set of Table 2, or None when the run had none."""
        if "calibration" not in self._f:
            return None
        g = self._f["calibration"]
        try:
            return CalibrationData(
                scenarios=_strs(g["scenario_label"]),
                bootstrap_models=_strs(g["bootstrap_model"]),
                index=g["calibration_index"][()],
                **{k: g[k][()] for k in _CAL_DIMS})
        except KeyError as exc:
            raise ResultsFormatError(f"{self.path}: /calibration lacks {exc}") from None

    def _table(self, name: str, cls: type) -> Any:
        if "tables" not in self._f or name not in self._f["tables"]:
            return None
        return read_dataclass(self._f["tables"][name], cls)

    def table2(self) -> Table2 | None:
        """LRT rejection fractions (Berlfein+24 Table 2), or None before reduction."""
        return self._table("table2", Table2)

    def table3(self) -> Table3 | None:
        """Amplitude bias dA/sigma_A (Berlfein+24 Table 3), or None before reduction."""
        return self._table("table3", Table3)

    def recovery(self) -> RecoveryTable | None:
        """Parameter recovery summary, or None before reduction."""
        return self._table("recovery", RecoveryTable)

    def dataset(self, path: str) -> np.ndarray:
        """Any dataset by its path in the file (escape hatch; prefer the typed accessors)."""
        try:
            return self._f[path][()]
        except KeyError:
            raise ResultsFormatError(f"{self.path}: no dataset {path!r}") from None


def _read_stacked(group: h5py.Group, cls: type, n: int, order: Mapping[str, Sequence[str]],
                  **given: Any) -> Any:
    """Rebuild a stacked-record dataclass from the group of the same nesting.

    Nested dataclass fields are sub-groups of the field's name, ``dict`` fields
    a sub-group per key (in the order ``order[field]``), ``str`` fields
    attributes; array fields are datasets, or an attribute holding a string
    that was equal in all ``n`` realisations.
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = dict(given)
    for f in dataclasses.fields(cls):
        if f.name in values:
            continue
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            values[f.name] = _read_stacked(group[f.name], tp, n, order)
        elif typing.get_origin(tp) is dict:
            inner = typing.get_args(tp)[1]
            sub = group[f.name]
            values[f.name] = {k: _read_stacked(sub[k], inner, n, order)
                              for k in order.get(f.name, tuple(sub))}
        elif tp is str:
            values[f.name] = _attr_str(group.attrs[f.name])
        elif f.name in group:
            ds = group[f.name]
            values[f.name] = ds.asstr()[()] if ds.dtype.kind == "O" else ds[()]
        else:  # a string constant over realisations is stored as an attribute
            values[f.name] = np.array([_attr_str(group.attrs[f.name])] * n)
    return cls(**values)


def open_results(path: str | Path) -> ResultsFile:
    """Open an aggregated results file for reading.

    Raises
    ------
    ResultsFormatError
        Missing file, not HDF5, another schema version (older files are refused
        with one line saying so), or missing required groups.
    """
    return ResultsFile(path)


def utc_now() -> str:
    """Current time, ISO 8601 UTC (for :attr:`Provenance.created`)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def diff_results(path_a: str | Path, path_b: str | Path, *,
                 include_volatile: bool = False) -> tuple[str, ...]:
    """Datasets that differ between two results files (bitwise, NaN equal to NaN).

    Parameters
    ----------
    path_a, path_b : str or Path
    include_volatile : bool
        Also compare timings and messages (:data:`hpcsys.io.schema.VOLATILE`).

    Returns
    -------
    tuple of str
        Paths present in only one file or whose dtype, shape or values differ;
        empty when the runs agree bit for bit.
    """
    def load(path: str | Path) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with h5py.File(path, "r") as f:
            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset) and (include_volatile or not is_volatile(name)):
                    out[name] = obj[()]
            f.visititems(visit)
        return out

    a, b = load(path_a), load(path_b)
    diff = sorted(set(a) ^ set(b))
    for k in sorted(set(a) & set(b)):
        x, y = a[k], b[k]
        same = x.dtype == y.dtype and x.shape == y.shape and np.array_equal(
            x, y, equal_nan=x.dtype.kind in "fc")
        if not same:
            diff.append(k)
    return tuple(diff)
