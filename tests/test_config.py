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
    parse_config,
)

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _yaml_line(name: str, key: str) -> str:
    """The line of ``configs/NAME.yaml`` that sets ``key`` (with its comment), or ''."""
    lines = (CONFIGS / f"{name}.yaml").read_text().splitlines()
    return next((ln for ln in lines if ln.strip().startswith(f"{key}:")), "")


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


@pytest.mark.parametrize("name", ["ci", "quick", "paper"])
def test_shipped_amplitudes_are_calibrated_or_say_why_not(name: str) -> None:
    """Each contamination amplitude is the calibrated default (hpcsys.sims.truth) or its
    line in the shipped YAML carries a ``# reason:`` comment."""
    from hpcsys.config import ContaminationSection

    cfg = load_config(CONFIGS / f"{name}.yaml")
    calibrated = ContaminationSection()
    for key in ("additive_amplitude", "multiplicative_amplitude"):
        value = getattr(cfg.contamination, key)
        if value == getattr(calibrated, key):
            continue
        assert "# reason:" in _yaml_line(name, key), (
            f"{name}.yaml: contamination.{key} = {value} differs from the calibrated "
            f"{getattr(calibrated, key)} without a '# reason:' comment")


@pytest.mark.parametrize("name", ["ci", "quick", "paper"])
def test_shipped_template_families_are_distinct_at_their_nside_or_say_why_not(name: str) -> None:
    """The smooth families (exp, gauss, power2) keep at least 70 per cent of their variance
    below l = 2 NSIDE (white: 4/9), or the ``ell_scale`` line carries a ``# reason:``."""
    from hpcsys.sims.spectra import large_scale_fraction
    from hpcsys.sims.templates import template_families

    cfg = load_config(CONFIGS / f"{name}.yaml")
    used = set(template_families(cfg.templates)) & {"exp", "gauss", "power2"}
    frac = {f: large_scale_fraction(f, cfg.sky.nside, cfg.templates.ell_scale) for f in used}
    assert min(frac.values()) >= 0.7 or "# reason:" in _yaml_line(name, "ell_scale"), (name, frac)


def test_large_scale_fraction_separates_the_families_from_pixel_noise() -> None:
    """White has (4 N^2 - 4) / (9 N^2 - 4), about 4/9, of its variance below 2 NSIDE
    (C_0 = C_1 = 0); the unscaled exp and gauss are close to it at NSIDE 128 and recover
    their NSIDE-512 values with ell_scale 1/4."""
    from hpcsys.sims.spectra import large_scale_fraction

    for nside in (16, 128, 512):
        exact = (4 * nside**2 - 4) / (9 * nside**2 - 4)
        assert large_scale_fraction("white", nside) == pytest.approx(exact, abs=1e-12)
    assert large_scale_fraction("exp", 128) < 0.55 and large_scale_fraction("gauss", 128) < 0.75
    for fam in ("exp", "gauss"):
        assert large_scale_fraction(fam, 128, 0.25) == pytest.approx(
            large_scale_fraction(fam, 512), abs=2e-3)
    with pytest.raises(ConfigError, match=r"^templates\.ell_scale"):
        parse_config({"templates": {"ell_scale": 0.0}})


def test_paper_config_uses_the_calibrated_amplitudes() -> None:
    from hpcsys.config import ContaminationSection

    cfg, calibrated = load_config(CONFIGS / "paper.yaml"), ContaminationSection()
    assert cfg.contamination.additive_amplitude == calibrated.additive_amplitude
    assert cfg.contamination.multiplicative_amplitude == calibrated.multiplicative_amplitude
    assert cfg.analysis.calibration_realisations >= 1 / cfg.analysis.alpha - 1


def test_float32_precision_is_refused_with_one_clear_line() -> None:
    """float32 is not supported (docs/science/conventions.rst): refused, naming the key."""
    with pytest.raises(ConfigError, match=r"^run\.precision: must be one of float64; got 'float32'"):
        parse_config({"run": {"precision": "float32"}})


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


def test_unquoted_null_scenario_means_the_null_scenario() -> None:
    import yaml


    cfg = parse_config(yaml.safe_load("run:\n  scenarios: [null, additive]\n"))
    assert cfg.run.scenarios == ("null", "additive")


def test_walkers_must_cover_the_mcmc_dimension_of_a_mock_run() -> None:
    from hpcsys.config import ConfigError, parse_config

    raw = {"templates": {"n_templates": 25}, "methods": {"mcmc_walkers": 100}}
    with pytest.raises(ConfigError, match=r"^methods\.mcmc_walkers: MCMC-comb .* at least 102"):
        parse_config(raw)
    # user maps (hpcsys fit) take K from the maps, not from templates.n_templates
    assert parse_config(raw, mock_run=False).methods.mcmc_walkers == 100
    with pytest.raises(ConfigError, match="even number"):
        parse_config({"methods": {"mcmc_backend": "jax", "mcmc_walkers": 65}}, mock_run=False)


def test_overrides_are_typed_validated_and_keep_the_rest() -> None:
    from hpcsys.config import Config, ConfigError, apply_overrides

    cfg = apply_overrides(Config(), ["sky.nside=32", "methods.names=[OLS, ISD-1]"])
    assert cfg.sky.nside == 32 and cfg.methods.names == ("OLS", "ISD-1")
    assert cfg.templates == Config().templates
    for bad, key in [("sky.nside=33", "sky.nside"), ("sky.nside=abc", "sky.nside"),
                     ("nside=32", "--set nside"), ("sky.colour=1", "sky.colour")]:
        with pytest.raises(ConfigError, match=f"^{key}"):
            apply_overrides(cfg, [bad])
    assert apply_overrides(cfg, []).text == cfg.text


def test_config_reference_lists_every_key() -> None:
    import dataclasses

    from hpcsys.config import Config, config_reference

    ref = config_reference()
    for section in dataclasses.fields(Config):
        if section.name == "source":
            continue
        for f in dataclasses.fields(getattr(Config(), section.name)):
            assert f"``{f.name}``" in ref, f"{section.name}.{f.name}"
