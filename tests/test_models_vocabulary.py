"""The model vocabulary is defined once, in hpcsys.core.models, and used from there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hpcsys.core.models as vocab

ROOT = Path(__file__).resolve().parents[1] / "hpcsys"
NAMES = ("MODELS", "SCENARIOS", "FIT_MODELS", "LRT_PAIRS", "LIKELIHOODS")


def test_vocabulary_is_consistent():
    assert vocab.SCENARIOS == tuple(vocab.MODELS)
    assert set(vocab.FIT_MODELS) <= set(vocab.MODELS)
    for null, alt in vocab.LRT_PAIRS:
        assert null in vocab.FIT_MODELS and alt in vocab.FIT_MODELS
        # nested: the alternative has every term of the null model
        assert all(n <= a for n, a in zip(vocab.MODELS[null], vocab.MODELS[alt]))
    assert vocab.MODELS["null"] == (False, False) and vocab.MODELS["combined"] == (True, True)


@pytest.mark.parametrize(("module", "names"), [
    ("hpcsys.config", ("SCENARIOS", "LIKELIHOODS")),
    ("hpcsys.core", NAMES),
    ("hpcsys.core.likelihood", ("MODELS", "LIKELIHOODS")),
    ("hpcsys.core.fit", ("MODELS",)),
    ("hpcsys.core.comparison", ("FIT_MODELS", "LRT_PAIRS")),
    ("hpcsys.sims.truth", ("MODELS", "SCENARIOS")),
    ("hpcsys.reduction", ("MODELS",)),
    ("hpcsys.population", ("MODELS",)),
    ("hpcsys.methods.ensemble", ("MODELS",)),
])
def test_modules_use_the_same_objects(module, names):
    import importlib

    mod = importlib.import_module(module)
    for name in names:
        assert getattr(mod, name) is getattr(vocab, name), f"{module}.{name}"


def test_no_other_module_defines_the_vocabulary():
    """No assignment to a vocabulary name anywhere in hpcsys/ except hpcsys/core/models.py."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        if path == ROOT / "core" / "models.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id in (*NAMES, "WEIGHTING_METHODS"):
                    offenders.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {t.id}")
    assert not offenders, offenders


def test_config_validates_against_the_vocabulary():
    from hpcsys.config import ConfigError, parse_config

    cfg = parse_config({"run": {"scenarios": list(vocab.SCENARIOS)},
                        "methods": {"likelihoods": list(vocab.LIKELIHOODS)}})
    assert cfg.run.scenarios == vocab.SCENARIOS
    with pytest.raises(ConfigError, match=r"methods\.likelihoods"):
        parse_config({"methods": {"likelihoods": ["student"]}})


def test_importing_the_vocabulary_does_not_import_jax():
    import subprocess
    import sys

    code = "import sys, hpcsys.core.models, hpcsys.config; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_hpcsys_fit_does_not_import_the_pipeline():
    """``hpcsys fit`` shares compare_models with the pipeline, not the pipeline module itself
    (which pulls in GLASS and TreeCorr)."""
    imported = set()
    for node in ast.walk(ast.parse((ROOT / "userfit.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert "hpcsys.core.comparison" in imported
    assert not {m for m in imported if m.startswith("hpcsys.pipeline")}
