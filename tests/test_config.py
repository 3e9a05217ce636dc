"""The shipped configs load, validate and say what they promise."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcsys.config import (
    METHOD_NAMES,
    SCENARIOS,
    Config,
    ConfigError,
    config_reference,
    load_config,
)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


@pytest.mark.parametrize("name", ["ci", "quick", "paper"])
def test_shipped_configs_are_valid_and_complete(name: str, tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.run.name == name
    assert cfg.output_dir == Path("runs") / name
    assert cfg.run.scenarios == SCENARIOS  # all four scenarios
    assert cfg.methods.names == METHOD_NAMES  # all six methods
    assert cfg.run.precision == "float64"
    # the resolved text round-trips to the same configuration
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.text)
    assert load_config(path).to_dict() == cfg.to_dict()


def test_paper_config_matches_the_paper() -> None:
    cfg = load_config(CONFIGS / "paper.yaml")
    assert cfg.sky.nside == 512 and cfg.sky.footprint == "kids"
    assert cfg.run.n_realisations == 119
    assert cfg.n_templates == 25
    m = cfg.methods
    assert (m.mcmc_walkers, m.mcmc_steps, m.mcmc_burn_in) == (250, 1500, 300)


def test_quick_config_is_small_but_reducible() -> None:
    cfg = load_config(CONFIGS / "quick.yaml")
    # Table 3 needs a Hartlap inverse: more realisations than bins + 2
    assert cfg.run.n_realisations > cfg.twopoint.n_bins + 2
    assert cfg.sky.nside <= 128 and cfg.methods.mcmc_steps <= 1000


def test_parallel_keys_are_documented_and_overridable() -> None:
    ref = config_reference()
    for key in ("distribution", "threads_per_rank", "gpu_memory_fraction", "bind_cores",
                "progress_interval_s", "compilation_cache_dir"):
        assert f"``{key}``" in ref
    cfg = Config().replace(**{"parallel.distribution": "cyclic",
                              "parallel.compilation_cache_dir": "/tmp/cache"})
    assert cfg.parallel.distribution == "cyclic"
    assert cfg.parallel.compilation_cache_dir == "/tmp/cache"
    with pytest.raises(ConfigError, match=r"^parallel\.gpu_memory_fraction: "):
        Config().replace(**{"parallel.gpu_memory_fraction": 1.5})
