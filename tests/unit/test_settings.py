"""Settings that must come together, and the secrets' minimum length (SPEC 8)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from roomcast import Settings

LONG = "x" * 32


def test_a_webhook_url_needs_its_signing_secret() -> None:
    with pytest.raises(ValidationError, match="ROOMCAST_WEBHOOK_SECRET is required"):
        Settings(jwt_secret=LONG, webhook_url="http://127.0.0.1:9/hooks")
    ok = Settings(jwt_secret=LONG, webhook_url="http://127.0.0.1:9/hooks", webhook_secret=LONG)
    assert ok.webhook_event_kinds == {"client_event", "presence", "room"}


def test_every_rotation_secret_is_long_enough_and_listed_after_the_main_one() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(jwt_secrets=f"{LONG},short")
    settings = Settings(jwt_secret="a" * 32, jwt_secrets=f"{LONG},{'a' * 32}")
    assert settings.jwt_secret_list == ["a" * 32, LONG]


def test_any_one_key_source_is_enough_to_serve() -> None:
    assert Settings(api_keys="k").missing_for_serving() == [
        "ROOMCAST_JWT_SECRET (or ROOMCAST_JWT_SECRETS, ROOMCAST_JWT_PUBLIC_KEY,"
        " ROOMCAST_JWT_JWKS_URL)"
    ]
    for given in ({"jwt_secrets": LONG}, {"jwt_jwks_url": "http://127.0.0.1:9/jwks"}):
        assert Settings(api_keys="k", **given).missing_for_serving() == []
