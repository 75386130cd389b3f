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
