"""Settings of `frugal serve`: bad values are refused with a message that says what to give."""

from __future__ import annotations

from pathlib import Path

import pytest

from frugal.service.config import ConfigError, ServiceConfig, load_toml, merged


def test_a_toml_file_sets_what_the_command_line_leaves_out(tmp_path):
    (tmp_path / "serve.toml").write_text('[serve]\nstores = ["a.sqlite"]\nwarehouse = "w.duckdb"\n'
                                         'ingest_every = 5\nbackground_nice = 0\n', encoding="utf-8")
    config = merged(load_toml(tmp_path / "serve.toml"), {"port": 9000, "ingest_every_s": None})
    assert config.warehouse == tmp_path / "w.duckdb" and config.stores == ("a.sqlite",)
    assert (config.port, config.ingest_every_s, config.background_nice) == (9000, 5, 0)


@pytest.mark.parametrize("values, message", [
    ({"background_nice": 25}, "niceness from 0 to 19"),
    ({"background_nice": -5}, "niceness from 0 to 19"),
    ({"port": 0}, "not a TCP port"),
    ({"host": "0.0.0.0"}, "without a token"),
    ({"max_lost_pushes": 1.5}, "share in [0, 1)"),
    ({"refit_timeout_s": 0}, "refit_timeout_s must be > 0"),
])
def test_bad_settings_are_refused_clearly(values, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        ServiceConfig(stores=("a.sqlite",), warehouse=Path("w.duckdb"), **values)


def test_an_unknown_setting_is_named(tmp_path):
    (tmp_path / "serve.toml").write_text("ingest_evry = 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="ingest_evry"):
        load_toml(tmp_path / "serve.toml")


@pytest.mark.parametrize("table", ["", "[serve]\n"])
def test_modes_and_exploration_are_set_in_toml_at_the_top_level_or_under_serve(tmp_path, table):
    (tmp_path / "serve.toml").write_text(f'{table}stores = ["a.sqlite"]\nwarehouse = "w.duckdb"\nmode = "shadow"\n'
                                         'new_pipeline_mode = "off"\nexplore = 0.25\nexplore_seed = 7\n',
                                         encoding="utf-8")
    config = merged(load_toml(tmp_path / "serve.toml"), {"explore": None, "mode": None})
    assert (config.mode, config.new_pipeline_mode, config.explore, config.explore_seed) == ("shadow", "off", 0.25, 7)
    defaults = ServiceConfig(stores=("a.sqlite",), warehouse=Path("w.duckdb"))
    assert (defaults.mode, defaults.new_pipeline_mode, defaults.explore, defaults.explore_seed) == \
        ("enforce", "shadow", 0.05, 0)


@pytest.mark.parametrize("line, message", [
    ('mode = "sometimes"', "mode must be one of enforce, shadow, off, got 'sometimes'"),
    ('new_pipeline_mode = "enforced"', "new_pipeline_mode must be one of enforce, shadow, off"),
    ("explore = 1.0", "explore must be a probability in [0, 1)"),
    ("explore = -0.1", "explore must be a probability in [0, 1)"),
    ('explore = "half"', "explore must be a probability"),
    ("explore_seed = 1.5", "explore_seed must be an integer"),
])
def test_bad_modes_and_exploration_settings_are_refused_clearly(tmp_path, line, message):
    (tmp_path / "serve.toml").write_text(f'[serve]\nstores = ["a.sqlite"]\nwarehouse = "w.duckdb"\n{line}\n',
                                         encoding="utf-8")
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        merged(load_toml(tmp_path / "serve.toml"), {})


@pytest.mark.parametrize("table", ["", "[serve]\n"])
def test_the_objective_and_its_budgets_are_set_in_toml_and_reach_the_policy(tmp_path, table):
    from frugal.service.state import Service

    (tmp_path / "serve.toml").write_text(f'{table}stores = ["a.sqlite"]\nwarehouse = "w.duckdb"\n'
                                         'objective = "pushes"\nmax_added_age = 0.1\nmax_model_age_h = 30\n',
                                         encoding="utf-8")
    config = merged(load_toml(tmp_path / "serve.toml"), {"max_added_age": None})
    assert (config.objective, config.max_added_age, config.max_model_age_h) == ("pushes", 0.1, 30)
    defaults = ServiceConfig(stores=("a.sqlite",), warehouse=Path("w.duckdb"))
    assert (defaults.objective, defaults.max_added_age, defaults.max_model_age_h) == ("freshness", 0.05, None)
    service = Service(merged(load_toml(tmp_path / "serve.toml"), {}))
    try:
        policy = service.policy_config
        assert (policy.objective, policy.max_added_age, policy.max_model_age_h) == ("pushes", 0.1, 30)
    finally:
        service.stop()


@pytest.mark.parametrize("values, message", [
    ({"objective": "speed"}, 'objective must be "freshness" or "pushes"'),
    ({"max_added_age": -0.1}, "max_added_age must be a share >= 0"),
    ({"max_model_age_h": 0}, "max_model_age_h must be > 0 hours"),
])
def test_bad_objective_settings_are_refused_clearly(values, message):
    with pytest.raises(ConfigError, match=message):
        ServiceConfig(stores=("a.sqlite",), warehouse=Path("w.duckdb"), **values)
