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
        sc.lrt.lam                          # (N, Q, L)
        res.table3().mean_dA_over_sigma     # (S, E)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hpcsys.io.atomic import atomic_h5
from hpcsys.io.schema import SCHEMA_VERSION, SKIPPED_FIELDS, dims_for, is_volatile
from hpcsys.io.serialize import SerializationError, read_dataclass, write_dataclass
from hpcsys.io.tables import RecoveryTable, Table2, Table3

__all__ = [
    "Coordinates",
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
    "write_results",
    "write_tables",
]

_STR = h5py.string_dtype("utf-8")
#: Top-level result fields routed into sub-groups of a scenario (prefix -> group).
_PREFIX_ROUTES: dict[str, str] = {"mle_": "mle", "lrt_": "lrt"}
_FIELD_ROUTES: dict[str, str] = {
    "stage_seconds": "timings/stage_seconds",
    "peak_memory_mb": "timings/peak_memory_mb",
}
#: Fields identical in every task, stored once at the root.
_HOISTED: tuple[str, ...] = ("theta_arcmin",)


class ResultsFormatError(ValueError):
    """A results file is missing, unreadable, of another schema version or lacks a group."""


@dataclass(frozen=True)
class Provenance:
    """Where, when and from what a run was made (root attributes of ``results.h5``)."""

    schema_version: int
    hpcsys_version: str
    git_hash: str
    config_text: str
    config_source: str
    master_seed: int
    created: str
    n_ranks: int
    hosts: tuple[str, ...]
    devices: tuple[str, ...]
    n_tasks: int


@dataclass(frozen=True)
class Coordinates:
    """Labels of the named axes (stored under ``/coords``)."""

    scenario: tuple[str, ...]
    method: tuple[str, ...]
    likelihood: tuple[str, ...]
    fit_model: tuple[str, ...]
    lrt_pair: tuple[str, ...]
    stage: tuple[str, ...]
    template: tuple[str, ...]

    @property
    def estimator(self) -> tuple[str, ...]:
        """``uncorrected`` followed by the method names (Table 3 rows)."""
        return ("uncorrected", *self.method)

    @property
    def parameter(self) -> tuple[str, ...]:
        """``a_0 .. a_{K-1}, b_0 .. b_{K-1}``."""
        K = len(self.template)
        return tuple(f"a_{i}" for i in range(K)) + tuple(f"b_{i}" for i in range(K))


@dataclass(frozen=True)
class TemplateInfo:
    """Templates of the run (``/templates``).

    Attributes
    ----------
    names : tuple of str, length K
    correlation : ndarray, shape (K, K)
        Correlation matrix of the templates on the footprint (the requested
        matrix when templates are redrawn per realisation).
    xi : ndarray, shape (B, K, K), or None
        Template auto/cross-correlation functions xi_ij(theta) (Berlfein+24 Eq. 16);
        None when templates are redrawn per realisation.
    """

    names: tuple[str, ...]
    correlation: np.ndarray
    xi: np.ndarray | None = None


@dataclass(frozen=True)
class MethodArrays:
    """One method's results over a scenario's N realisations (K templates).

    ``a, b, a_err, b_err, a_mean, b_mean, a_std, b_std``: (N, K); ``cov``: (N, 2K, 2K);
    the rest (N,). See :class:`hpcsys.methods.base.MethodResult` for meanings.
    """

    name: str
    model: str
    a: np.ndarray
    b: np.ndarray
    a_err: np.ndarray
    b_err: np.ndarray
    cov: np.ndarray
    a_mean: np.ndarray
    b_mean: np.ndarray
    a_std: np.ndarray
    b_std: np.ndarray
    sigma: np.ndarray
    converged: np.ndarray
    n_iterations: np.ndarray
    acceptance_fraction: np.ndarray
    autocorr_time: np.ndarray
    effective_samples: np.ndarray
    hit_pole: np.ndarray
    wall_time: np.ndarray
    message: np.ndarray


@dataclass(frozen=True)
class MLEArrays:
    """Maximum-likelihood fits: (N, F, L) and (N, F, L, K) arrays (F fit models, L likelihoods)."""

    loglike: np.ndarray
    converged: np.ndarray
    hit_pole: np.ndarray
    a: np.ndarray
    b: np.ndarray
    a_err: np.ndarray
    b_err: np.ndarray
    s: np.ndarray
    g: np.ndarray


@dataclass(frozen=True)
class LRTArrays:
    """Likelihood-ratio tests (Berlfein+24 Eq. 19): ``lam`` and ``pvalue`` (N, Q, L), ``dof`` (N, Q)."""

    lam: np.ndarray
    pvalue: np.ndarray
    dof: np.ndarray


@dataclass(frozen=True)
class TimingArrays:
    """Per-task cost: ``stage_seconds`` (N, stages) and ``peak_memory_mb`` (N,)."""

    stage_seconds: np.ndarray
    peak_memory_mb: np.ndarray


@dataclass(frozen=True)
class ScenarioData:
    """All per-realisation arrays of one scenario (axis 0: realisation, sorted by index).

    Attributes
    ----------
    name : str
    index : ndarray of int, shape (N,)
    seed_words : ndarray of uint32, shape (N, 4)
    a_true, b_true : ndarray, shape (N, K)
    w_true, w_obs : ndarray, shape (N, B)
    w_corrected, w_corrected_diag, w_remeasured : ndarray, shape (N, M, B)
    methods : dict of str to MethodArrays
        In the order of ``ResultsFile.method_names``.
    mle : MLEArrays
    lrt : LRTArrays
    timings : TimingArrays
    """

    name: str
    index: np.ndarray
    seed_words: np.ndarray
    a_true: np.ndarray
    b_true: np.ndarray
    w_true: np.ndarray
    w_obs: np.ndarray
    w_corrected: np.ndarray
    w_corrected_diag: np.ndarray
    w_remeasured: np.ndarray
    methods: dict[str, MethodArrays]
    mle: MLEArrays
    lrt: LRTArrays
    timings: TimingArrays

    @property
    def n_realisations(self) -> int:
        """Number of realisations N."""
        return int(self.index.shape[0])


# --------------------------------------------------------------------------- writing


def _route(name: str) -> str:
    if name in _FIELD_ROUTES:
        return _FIELD_ROUTES[name]
    for prefix, group in _PREFIX_ROUTES.items():
        if name.startswith(prefix):
            return f"{group}/{name[len(prefix):]}"
    return name


def _is_dc(v: Any) -> bool:
    return dataclasses.is_dataclass(v) and not isinstance(v, type)


def _collect(obj: Any, base: str, out: dict[str, list[Any]], top: bool) -> None:
    for f in dataclasses.fields(obj):
        if f.name in SKIPPED_FIELDS or (top and f.name in (*_HOISTED, "scenario")):
            continue
        v = getattr(obj, f.name)
        rel = _route(f.name) if top else f.name
        path = f"{base}/{rel}" if base else rel
        if _is_dc(v):
            _collect(v, base, out, top=False)  # nested record: flattened into the same group
        elif isinstance(v, (tuple, list)) and v and all(_is_dc(x) for x in v):
            for i, item in enumerate(v):
                label = str(getattr(item, "name", i))
                _collect(item, f"{path}/{label}", out, top=False)
        elif v is not None:
            out.setdefault(path, []).append(v)


def _write_stack(group: h5py.Group, rel: str, values: list[Any], n: int) -> None:
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
    ds.attrs["dims"] = ",".join(dims_for(rel, ds.ndim))


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
        axis 0 in index order. Routing of fields to groups: ``mle_*`` to
        ``mle/``, ``lrt_*`` to ``lrt/``, ``stage_seconds``/``peak_memory_mb`` to
        ``timings/``, tuples of named records (methods) to ``<field>/<name>/``
        with nested records flattened; per-pixel fields
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
        cg = f.create_group("coords")
        for k, v in dataclasses.asdict(coords).items():
            _write_strings(cg, k, v)
        _write_strings(cg, "estimator", coords.estimator)
        _write_strings(cg, "parameter", coords.parameter)
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
                    elif v.shape != hoisted[name].shape or not np.array_equal(v, hoisted[name]):
                        raise SerializationError(
                            f"{name}: differs between tasks (scenario {scenario}, "
                            f"index {r.index})")
            out: dict[str, list[Any]] = {}
            for r in recs:
                _collect(r, "", out, top=True)
            g = sg.create_group(scenario)
            for rel, values in out.items():
                _write_stack(g, rel, values, len(recs))
        for name, v in hoisted.items():
            ds = f.create_dataset(name, data=v)
            ds.attrs["dims"] = "bin"
        if templates is not None:
            tg = f.create_group("templates")
            _write_strings(tg, "names", templates.names)
            tg.create_dataset("correlation", data=templates.correlation).attrs["dims"] = (
                "template,template")
            if templates.xi is not None:
                tg.create_dataset("xi", data=templates.xi).attrs["dims"] = (
                    "bin,template,template")
        f.attrs["complete"] = True
    return path


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
                raise ResultsFormatError(
                    f"{self.path}: schema version {version}, this hpcsys reads {SCHEMA_VERSION}")
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
            c = self._f["coords"]
            self.coords = Coordinates(**{
                fld.name: _strs(c[fld.name]) for fld in dataclasses.fields(Coordinates)})
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
            methods = {}
            for m in self.method_names:
                mg = g["methods"][m]
                vals = {}
                for fld in dataclasses.fields(MethodArrays):
                    if fld.name in ("name", "model"):
                        continue
                    if fld.name in mg:
                        ds = mg[fld.name]
                        vals[fld.name] = ds.asstr()[()] if ds.dtype.kind == "O" else ds[()]
                    else:  # a string constant over realisations is stored as an attribute
                        n = g["index"].shape[0]
                        vals[fld.name] = np.array([_attr_str(mg.attrs[fld.name])] * n)
                methods[m] = MethodArrays(name=m, model=_attr_str(mg.attrs.get("model", "")),
                                          **vals)
            mle = MLEArrays(**{fld.name: g["mle"][fld.name][()]
                               for fld in dataclasses.fields(MLEArrays)})
            lrt = LRTArrays(lam=g["lrt/lambda"][()], pvalue=g["lrt/pvalue"][()],
                            dof=g["lrt/dof"][()])
            timings = TimingArrays(g["timings/stage_seconds"][()],
                                   g["timings/peak_memory_mb"][()])
            simple = {fld.name: g[fld.name][()] for fld in dataclasses.fields(ScenarioData)
                      if fld.name not in ("name", "methods", "mle", "lrt", "timings")}
        except KeyError as exc:
            raise ResultsFormatError(f"{self.path}: scenario {name!r} lacks {exc}") from None
        return ScenarioData(name=name, methods=methods, mle=mle, lrt=lrt, timings=timings,
                            **simple)

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


def open_results(path: str | Path) -> ResultsFile:
    """Open an aggregated results file for reading.

    Raises
    ------
    ResultsFormatError
        Missing file, not HDF5, wrong schema version, or missing required groups.
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
