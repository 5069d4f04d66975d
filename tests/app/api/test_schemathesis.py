"""Property-based requests generated from the app's own OpenAPI schema against the live server:
never a 5xx, and every 4xx carries OpenAI's error body. Bounded to a few examples per operation.

(Uses `as_strategy()` per operation rather than schemathesis' pytest plugin, whose subtests do not
run under this pytest version.)
"""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from app.api.main import create_app
from app.core.config import Settings

SCHEMA = schemathesis.openapi.from_dict(create_app(Settings()).openapi())
OPERATIONS = {op.label: op for op in (result.ok() for result in SCHEMA.get_all_operations())}


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_server_errors_and_openai_error_bodies(live_server, label):
    @given(case=OPERATIONS[label].as_strategy())
    @settings(max_examples=8, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call(base_url=live_server.url, timeout=120)
        case.validate_response(response, checks=[not_a_server_error])
        if 400 <= response.status_code < 500:
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}

    check()
