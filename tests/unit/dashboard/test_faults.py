"""API faults become the message a page shows, whichever API's fault style they are in."""

from __future__ import annotations

import httpx

from stratus.dashboard.cloud import fault_message


def test_fault_message_reads_every_api_style() -> None:
    for body in ({"itemNotFound": {"code": 404, "message": "Instance x could not be found."}},
                 {"error": {"code": 404, "message": "Instance x could not be found.", "title": "Not Found"}},
                 {"NeutronError": {"type": "X", "message": "Instance x could not be found.", "detail": ""}}):
        assert fault_message(httpx.Response(404, json=body)) == "Instance x could not be found."
    assert fault_message(httpx.Response(502, text="")) == "HTTP 502"
    assert fault_message(httpx.Response(409, text="plain words")) == "plain words"
    swift = "<html><h1>Conflict</h1><p>There was a conflict when trying to complete your request.</p></html>"
    assert fault_message(httpx.Response(409, text=swift)) == \
        "Conflict There was a conflict when trying to complete your request."

