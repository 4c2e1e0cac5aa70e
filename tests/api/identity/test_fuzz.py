"""Every identity endpoint, fuzzed from its OpenAPI schema, answers without a 5xx."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode

from tests.conftest import make_identity

_STATE = Path(tempfile.mkdtemp(prefix="stratus-fuzz-"))
_HARNESS = make_identity(_STATE / "state", f"sqlite:///{_STATE / 'identity.sqlite'}")
schema = schemathesis.openapi.from_asgi("/openapi.json", _HARNESS.client.app)
# Valid and invalid input alike: malformed bodies and parameters must get a 4xx, never a 5xx.
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    # The admin's token reaches every handler (policy lets the admin through).
    headers = dict(case.headers or {})
    headers.setdefault("X-Auth-Token", _HARNESS.admin_token)
    response = case.call(headers=headers)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"
    if response.status_code >= 400 and response.content:
        assert "error" in response.json(), response.text[:300]
