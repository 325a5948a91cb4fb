"""Settings: the dashboards' defaults are the packaged thresholds file's, not a second copy."""

from __future__ import annotations

from hlthz.alerts import DEFAULT_CONFIG_PATH, load_config
from hlthz.dashboards import DashboardSettings


def test_no_argument_settings_are_the_packaged_thresholds() -> None:
    packaged = DashboardSettings.from_config(load_config(DEFAULT_CONFIG_PATH))
    assert DashboardSettings() == packaged
