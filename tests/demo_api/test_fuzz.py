"""Schemathesis fuzzes the published OpenAPI schema: no input produces a 5xx (faults off).

Hypothesis drives each operation's strategy directly (bounded examples per operation), which
keeps the app in a fixture with a fresh database per profile.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from prometheus_client import CollectorRegistry

from hlthz.demo_api import Settings, create_app
from tests.demo_api.conftest import FAST

EXAMPLES_PER_OPERATION = 25


@pytest.mark.parametrize("profile", ["before", "after"])
def test_no_input_gives_a_server_error(profile: str, sqlite_dirs: dict[str, Path]) -> None:
    settings_ = Settings.for_profile(profile, data_dir=sqlite_dirs[profile], **FAST)  # type: ignore[arg-type]
    app = create_app(settings_, registry=CollectorRegistry())
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    fuzzed: list[str] = []
    try:
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def no_server_error(case: schemathesis.Case) -> None:
                response = case.call()
                assert response.status_code < 500, (
                    case.method, case.formatted_path, case.query, case.body, response.text,
                )  # fmt: skip

            no_server_error()
            fuzzed.append(operation.label)
    finally:
        app.state.shop.close()
    assert len(fuzzed) == 7, fuzzed
