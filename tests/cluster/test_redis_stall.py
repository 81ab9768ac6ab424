"""A stalled Redis (SIGSTOP): bounded answers, honest ambiguity, retries applied once.

SIGSTOP is what a Redis frozen by a long fork, a swap storm or a paused VM looks
like: connections stay open, the kernel even completes new TCP handshakes, and
whatever was written to its sockets runs when it resumes. A publish that went out
and got no answer may therefore be applied later; roomcast must say so
(`outcome_unknown`) and hand out the idempotency key that makes a retry safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx

from tests.support.redis_procs import RedisServer
from tests.support.server import Client, running_server

TIMEOUT_S = 1.0  # redis_timeout_ms's default
MARGIN_S = 0.5  # scheduling on a loaded 2-core machine
SEQUENTIAL = 5
STAGGERED = 5  # started 0.2 s apart, so most arrive while an earlier batch is stuck


def _body(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "room": "project_p",
        "type": "project_progress_update",
        "data": {"total": 1000, "completed": n, "percent": 0},
        **extra,
    }


@contextlib.contextmanager
def _stalled(redis: RedisServer) -> Iterator[None]:
    os.kill(redis.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(redis.pid, signal.SIGCONT)


async def _until_ready(http: httpx.AsyncClient, timeout: float = 15) -> None:
    """Until /readyz says 200 (a bounded poll: readiness has no push channel)."""
    for _ in range(int(timeout / 0.1)):
        if (await http.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not ready within {timeout} s")


async def _timed(http: httpx.AsyncClient, n: int, delay: float = 0) -> tuple[float, httpx.Response]:
    await asyncio.sleep(delay)  # pacing the arrivals, not waiting for anything
    started = time.monotonic()
    response = await http.post("/api/v1/publish", json=_body(n))
    return time.monotonic() - started, response


async def _deliveries_until(client: Client, marker: int) -> Counter[int]:
    """How often each `completed` arrived, up to the marker event (which follows them all)."""
    seen: Counter[int] = Counter()
    while True:
        event = await client.next("project_progress_update", timeout=10)
        n = event["data"]["completed"]
        if n == marker:
            return seen
        seen[n] += 1


async def test_a_stalled_redis_bounds_publishes_and_a_retry_with_the_key_applies_once(
    cluster_settings: Any, redis: RedisServer
) -> None:
    async with running_server(cluster_settings(1)) as server:
        client = await server.client("u", projects=["p"], rooms=["annotation_o"])
        async with httpx.AsyncClient(
            base_url=server.url, headers=server.api_headers, timeout=30
        ) as http:
            try:
                assert (await client.call("join", {"room": "project_p"}))["ok"]
                assert (await client.call("join", {"room": "annotation_o"}))["ok"]
                first = await http.post("/api/v1/publish", json=_body(0))
                assert first.status_code == 200, first.text
                await client.next("project_progress_update")

                answers: dict[int, httpx.Response] = {}
                latencies: list[float] = []
                stalled_at = time.monotonic()
                with _stalled(redis):
                    for n in range(1, SEQUENTIAL + 1):
                        latency, answers[n] = await _timed(http, n)
                        latencies.append(latency)
                    staggered = await asyncio.gather(
                        *(_timed(http, SEQUENTIAL + 1 + i, delay=0.2 * i) for i in range(STAGGERED))
                    )
                    for i, (latency, response) in enumerate(staggered):
                        answers[SEQUENTIAL + 1 + i] = response
                        latencies.append(latency)
                    started = time.monotonic()
                    ready = await http.get("/readyz")
                    readyz_s = time.monotonic() - started
                    ack = await client.call(
                        "annotation_update",
                        {
                            "room": "annotation_o",
                            "client_event_id": "c1",
                            "data": {
                                "action": "create",
                                "annotation_id": "a",
                                "annotation": {
                                    "label": "x",
                                    "shape": {"type": "point", "x": 0, "y": 0},
                                },
                            },
                        },
                    )

                stall_s = time.monotonic() - stalled_at
                codes = Counter(r.json()["error"]["code"] for r in answers.values())
                print(
                    f"stall of {stall_s:.1f} s: publish latency max {max(latencies):.2f} s,"
                    f" /readyz 503 in {readyz_s:.2f} s, answers {dict(codes)}, ack {ack}"
                )
                assert max(latencies) <= TIMEOUT_S + MARGIN_S, latencies
                assert ready.status_code == 503 and "broker" in ready.json()["reason"]
                assert readyz_s <= TIMEOUT_S + MARGIN_S, readyz_s
                assert all(r.status_code == 503 for r in answers.values()), answers
                assert first.json()["idempotency_key"].startswith("rc-")  # server-made
                assert set(codes) <= {"outcome_unknown", "broker_unavailable"}, codes
                assert codes["outcome_unknown"] >= 1  # the write that went out unanswered
                for r in answers.values():
                    error = r.json()["error"]
                    assert error["temporary"] is True
                    assert error["idempotency_key"].startswith("rc-"), error
                assert ack["ok"] is False and ack["error"]["temporary"] is True, ack
                assert ack["error"]["code"] in {"outcome_unknown", "broker_unavailable"}

                await _until_ready(http)
                marker = await http.post("/api/v1/publish", json=_body(100))
                assert marker.status_code == 200, marker.text
                applied_late = await _deliveries_until(client, 100)
                # What a plain retry would have duplicated: answered 503, yet applied.
                assert set(applied_late) <= {
                    n for n, r in answers.items() if r.json()["error"]["code"] == "outcome_unknown"
                }, (applied_late, codes)
                assert all(count == 1 for count in applied_late.values()), applied_late

                for n, r in answers.items():
                    key = r.json()["error"]["idempotency_key"]
                    again = await http.post("/api/v1/publish", json=_body(n, idempotency_key=key))
                    assert again.status_code == 200, again.text
                    assert again.json()["idempotency_key"] == key
                marker = await http.post("/api/v1/publish", json=_body(101))
                assert marker.status_code == 200, marker.text
                retried = await _deliveries_until(client, 101)
                total = applied_late + retried
                print(
                    f"applied after the stall although answered 503: {sum(applied_late.values())};"
                    f" delivered after retries with the key: {dict(total)}"
                )
                assert total == Counter(list(answers)), total  # each exactly once
            finally:
                await client.close()


async def test_a_client_publish_sent_into_a_stall_is_outcome_unknown_and_its_retry_applies_once(
    cluster_settings: Any, redis: RedisServer
) -> None:
    def update(annotation_id: str, cid: str) -> dict[str, Any]:
        annotation = {"label": "x", "shape": {"type": "point", "x": 0, "y": 0}}
        data = {"action": "create", "annotation_id": annotation_id, "annotation": annotation}
        return {"room": "annotation_o", "client_event_id": cid, "data": data}

    async with running_server(cluster_settings(1)) as server:
        client = await server.client("u", rooms=["annotation_o"])
        try:
            assert (await client.call("join", {"room": "annotation_o"}))["ok"]
            with _stalled(redis):
                # Sent at once on an idle pooled connection: written, never answered.
                started = time.monotonic()
                ack = await client.call("annotation_update", update("a", "c1"))
                took = time.monotonic() - started
            assert ack["ok"] is False and ack["error"]["code"] == "outcome_unknown", ack
            assert ack["error"]["temporary"] is True
            assert took <= TIMEOUT_S + MARGIN_S, took
            async with httpx.AsyncClient(base_url=server.url) as http:
                await _until_ready(http)
            again = await client.call("annotation_update", update("a", "c1"))
            assert again["ok"] is True, again  # the first result, repeated
            assert (await client.call("annotation_update", update("b", "c2")))["ok"]
            seen: Counter[str] = Counter()
            while True:
                event = await client.next("annotation_update")
                seen[event["data"]["annotation_id"]] += 1
                if event["data"]["annotation_id"] == "b":
                    break
            assert seen == Counter({"a": 1, "b": 1}), seen
        finally:
            await client.close()
