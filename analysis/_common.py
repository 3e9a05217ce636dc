"""Shared plumbing of the analysis scripts: arguments, reading, style, output.

Every script in ``analysis/`` is runnable as ``python analysis/<name>.py
RUN/results.h5 --out DIR`` and exposes ``run(res, out) -> list[Path]`` so
that ``make_all.py`` can call all of them on one open file. Results are read
only through :func:`hpcsys.io.open_results`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import yaml

from hpcsys.config import Config, parse_config
from hpcsys.io import ResultsFile, open_results

__all__ = [
    "OKABE_ITO",
    "AnalysisError",
    "NotApplicable",
    "color_for",
    "config_of",
    "enable_x64",
    "main",
    "plain_log_ticks",
    "require",
    "run_context",
    "save_figure",
    "setup_style",
    "showcase_scenario",
    "write_text",
]

#: Okabe & Ito (2008) colour-blind-safe palette (black first).
OKABE_ITO: tuple[str, ...] = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
)
_FIXED = {
    "true": "#000000",
    "uncorrected": "#999999",
    "contaminated": "#999999",
    "OLS": "#E69F00",
    "ElasticNet": "#56B4E9",
    "ISD-1": "#009E73",
    "ISD-3": "#F0E442",
    "MCMC-add": "#0072B2",
    "MCMC-comb": "#D55E00",
    "null": "#000000",
    "additive": "#E69F00",
    "multiplicative": "#56B4E9",
    "combined": "#D55E00",
    "gaussian": "#0072B2",
    "skewnormal": "#D55E00",
}
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*")


class AnalysisError(ValueError):
    """The results file lacks what an analysis step needs (e.g. it was never reduced)."""


class NotApplicable(AnalysisError):
    """An analysis step does not apply to this run (e.g. too few realisations); skipped."""


def color_for(name: str, i: int = 0) -> str:
    """A fixed colour per method / scenario / likelihood name, Okabe-Ito otherwise."""
    return _FIXED.get(name, OKABE_ITO[(i + 1) % len(OKABE_ITO)])


def setup_style() -> None:
    """Readable defaults: larger fonts, light grid, colour-blind-safe cycle."""
    plt.rcParams.update({
        "figure.dpi": 110,
        "savefig.dpi": 150,
        "font.size": 10,
        "axes.titlesize": 10,
        "axes.labelsize": 10,
        "legend.fontsize": 8,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.prop_cycle": matplotlib.cycler(color=[*list(OKABE_ITO[1:]), OKABE_ITO[0]]),
        "pdf.fonttype": 42,
    })


def save_figure(fig: plt.Figure, out: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` to ``out`` and close the figure."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for p in paths:
        fig.savefig(p, bbox_inches="tight")
    plt.close(fig)
    return paths


def write_text(out: Path, name: str, text: str) -> Path:
    """Write a text file (table, summary) to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_text(text if text.endswith("\n") else text + "\n")
    return path


def require(value, what: str, res: ResultsFile):
    """``value`` or an :class:`AnalysisError` saying the file lacks ``what``."""
    if value is None:
        raise AnalysisError(f"{res.path}: no {what} in the file; reduce the run first "
                            f"(hpcsys reduce)")
    return value


def config_of(res: ResultsFile) -> Config:
    """The run's configuration, rebuilt from the text stored in the file."""
    return parse_config(yaml.safe_load(res.config_text), source=f"{res.path}:config_text")


def enable_x64() -> None:
    """float64 JAX, as the entry points use (for figures that refit maps)."""
    import jax

    jax.config.update("jax_enable_x64", True)


def main(run: Callable[[ResultsFile, Path], list[Path]], description: str,
         argv: Sequence[str] | None = None) -> int:
    """Command-line entry of one analysis script: ``RESULTS.h5 --out DIR``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("results", type=Path, help="aggregated results file (results.h5)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    args = parser.parse_args(argv)
    setup_style()
    try:
        with open_results(args.results) as res:
            paths = run(res, args.out)
    except NotApplicable as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return 0
    except ValueError as exc:  # ResultsFormatError, AnalysisError, ConfigError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


_CONTEXTS: dict[str, object] = {}


def run_context(res: ResultsFile):
    """The run's shared state rebuilt from its stored config (cached per config text).

    Maps are not stored in ``results.h5``; figures that need them regenerate
    them with :func:`hpcsys.pipeline.prepare_run` and
    :func:`hpcsys.pipeline.make_mock`, which are deterministic in the config
    (every random stream is keyed by the task index), so they reproduce the
    maps the run analysed.
    """
    from hpcsys.pipeline import prepare_run

    key = res.config_text
    if key not in _CONTEXTS:
        _CONTEXTS[key] = prepare_run(config_of(res))
    return _CONTEXTS[key]


def showcase_scenario(res: ResultsFile) -> str:
    """The scenario figures of single maps use: ``combined`` if present, else the last one."""
    return "combined" if "combined" in res.scenarios else res.scenarios[-1]


def plain_log_ticks(ax: plt.Axes, axis: str = "x") -> None:
    """Ticks at 1, 2, 5 x 10^k labelled as plain numbers on a logarithmic axis."""
    from matplotlib import ticker

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(ticker.FormatStrFormatter("%g"))
    target.set_minor_formatter(ticker.NullFormatter())
