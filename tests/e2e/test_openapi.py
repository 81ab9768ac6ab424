"""`/openapi.json` tells the truth about the HTTP API (SPEC section 6).

schemathesis loads and validates the document a live server serves, generates
requests for every documented operation from it (bodies, path and query parameters,
with the API key), sends them to that server over real HTTP, and checks every answer
against the document: no 5xx, a documented status code, content type and body
schema. A real uvicorn server on a free loopback port; schemathesis's own client is
synchronous, so it runs in a worker thread while the server runs on the test's loop.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.server import API_KEY, running_server

MAX_EXAMPLES = 25
SPEC_ERRORS = {"400", "401", "404", "409", "413", "503"}


def drive(base_url: str) -> dict[str, int]:
    """Run every documented operation against the server; calls made per operation."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=5)
    schema.validate()  # against the OpenAPI meta-schema
    calls: dict[str, int] = {}
    with requests.Session() as session:
        for result in schema.get_all_operations():
            # An operation schemathesis cannot read fails the test here.
            assert isinstance(result, Ok), result.err()
            operation = result.ok()
            label = f"{operation.method.upper()} {operation.path}"
            calls[label] = exercise(operation, base_url, session)
    return calls


def exercise(operation: Any, base_url: str, session: requests.Session) -> int:
    """Up to MAX_EXAMPLES generated requests to one operation, each answer checked."""
    calls = 0

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def conforms(case: Any) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(
            base_url=base_url,
            session=session,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=5,
            # A schema-valid publish may still be refused, rightly: whether an event
            # type may enter a room's kind, and what its data must hold, depends on
            # the type, which a JSON schema of the body does not tie to the room.
            excluded_checks=[positive_data_acceptance],
        )

    conforms()
    return calls


async def test_every_documented_operation_conforms_to_the_document() -> None:
    async with running_server() as server:
        started = time.monotonic()
        calls = await asyncio.to_thread(drive, server.url)
        elapsed = time.monotonic() - started
    documented = {
        "POST /api/v1/publish",
        "POST /api/v1/publish/batch",
        "GET /api/v1/rooms/{room}/history",
        "GET /api/v1/rooms/{room}/presence",
        "PUT /api/v1/rooms/{room}/binding",
        "GET /api/v1/rooms/{room}/binding",
        "POST /api/v1/users/{user_id}/disconnect",
        "GET /api/v1/stats",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    }
    assert set(calls) == documented, calls
    assert all(n > 0 for n in calls.values()), calls
    print(f"schemathesis: {sum(calls.values())} calls in {elapsed:.1f} s: {calls}")


async def test_document_describes_bodies_security_and_real_errors() -> None:
    async with (
        running_server() as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        doc = (await http.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["roomcastApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["roomcastApiKey"]["description"],
    }
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = set(operation["responses"])
            assert "422" not in responses, (method, path)
            if not path.startswith("/api/v1/"):
                assert "security" not in operation, (method, path)
                continue
            assert operation["security"] == [{"roomcastApiKey": []}], (method, path)
            assert {"200", "401", "503"} <= responses <= {"200"} | SPEC_ERRORS, (method, path)
            for status in responses - {"200"}:
                schema = operation["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    paths = doc["paths"]
    for path, method, required in (
        ("/api/v1/publish", "post", ["room", "type", "data"]),
        ("/api/v1/publish/batch", "post", ["events"]),
        ("/api/v1/rooms/{room}/binding", "put", ["project_id"]),
        ("/api/v1/users/{user_id}/disconnect", "post", []),
    ):
        body = paths[path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert body.get("required", []) == required, (path, body)
        assert body["additionalProperties"] is False, (path, body)
    batch = paths["/api/v1/publish/batch"]["post"]["requestBody"]["content"]
    events = batch["application/json"]["schema"]["properties"]["events"]
    assert events["maxItems"] == 1000 and events["items"]["required"] == ["room", "type", "data"]
    query = {
        p["name"]: p["schema"] for p in paths["/api/v1/rooms/{room}/history"]["get"]["parameters"]
    }
    assert query["since_seq"]["minimum"] == 0
    assert (query["limit"]["minimum"], query["limit"]["maximum"]) == (1, 1000)
    assert query["limit"]["default"] == 100


async def test_every_api_path_refuses_a_missing_or_wrong_key() -> None:
    async with (
        running_server() as server,
        httpx.AsyncClient(base_url=server.url, timeout=5) as http,
    ):
        doc = (await http.get("/openapi.json")).json()
        operations = [
            (
                method,
                re.sub(r"\{[a-z_]+\}", lambda m: "u1" if "user" in m[0] else "project_p1", path),
            )
            for path, item in doc["paths"].items()
            if path.startswith("/api/v1/")
            for method in item
        ]
        assert len(operations) == 8, operations
        for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": API_KEY}):
            for method, path in operations:
                r = await http.request(method, path, headers=headers, json={})
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.json()["error"]["code"] == "unauthorized", r.text
