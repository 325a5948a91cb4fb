"""Profiles and ``--opt`` switches."""

from __future__ import annotations

import pytest

from hlthz.demo_api import OPTIMIZATIONS, ConfigError, Settings, parse_opt, profile_opts


def test_profiles_turn_everything_off_or_on() -> None:
    assert set(profile_opts("before").values()) == {False}
    assert set(profile_opts("after").values()) == {True}
    assert list(profile_opts("after")) == list(OPTIMIZATIONS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("cache=on", ("cache", True)), ("pool=OFF", ("pool", False)),
     (" indexes = yes ", ("indexes", True)), ("compression=0", ("compression", False))],
)  # fmt: skip
def test_parse_opt(text: str, expected: tuple[str, bool]) -> None:
    assert parse_opt(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("cache", "expected NAME=on|off"), ("speed=on", "unknown optimization 'speed'"),
     ("cache=maybe", "value must be on or off")],
)  # fmt: skip
def test_bad_opts_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_opt(text)


def test_single_switch_on_top_of_a_profile() -> None:
    settings = Settings.for_profile("before", ["indexes=on"])
    assert settings.on("indexes") and not settings.on("cache")
    settings = Settings.for_profile("after", {"cache": False})
    assert not settings.on("cache") and settings.on("pool")
    with pytest.raises(ConfigError, match="unknown profile"):
        Settings.for_profile("fastest")


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: object) -> None:
    settings = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    assert settings.database_url == f"sqlite:///{tmp_path}/demo.sqlite3"
    assert Settings(db_url="postgresql://x@h/db").database_url == "postgresql://x@h/db"
