"""Every image endpoint, fuzzed from its OpenAPI schema, answers without a 5xx."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode

from tests.conftest import make_identity, make_image

_STATE = Path(tempfile.mkdtemp(prefix="stratus-image-fuzz-"))
_IDENTITY = make_identity(_STATE / "state", f"sqlite:///{_STATE / 'identity.sqlite'}")
_IMAGE = make_image(_IDENTITY, f"sqlite:///{_STATE / 'image.sqlite'}")
schema = schemathesis.openapi.from_asgi("/openapi.json", _IMAGE.client.app)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    headers = dict(case.headers or {})
    headers.setdefault("X-Auth-Token", _IDENTITY.admin_token)
    response = case.call(headers=headers)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:300]}"
