"""The signature header of SPEC section 10."""

from __future__ import annotations

import hashlib
import hmac

from roomcast.integration.signing import sign, verify

SECRET = b"platform-secret-0123456789abcdef"
BODY = b'{"user": {"user_id": "u1"}, "room": "annotation_42"}'


def test_the_header_is_the_documented_hmac_over_timestamp_and_body() -> None:
    header = sign(SECRET, BODY, now=1764150000)
    expected = hmac.new(SECRET, b"1764150000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1764150000,v1={expected}"


def test_a_signature_verifies_within_five_minutes_and_not_after() -> None:
    header = sign(SECRET, BODY, now=1000)
    assert verify(SECRET, header, BODY, now=1000 + 300)
    assert not verify(SECRET, header, BODY, now=1000 + 301)
    assert not verify(SECRET, header, BODY, now=1000 - 301)


def test_another_body_secret_or_a_malformed_header_does_not_verify() -> None:
    header = sign(SECRET, BODY, now=1000)
    assert not verify(SECRET, header, BODY + b" ", now=1000)
    assert not verify(b"another-secret-0123456789abcdef!", header, BODY, now=1000)
    for bad in ("", "t=1000", "v1=00", "t=x,v1=00", header.replace("v1=", "v2=")):
        assert not verify(SECRET, bad, BODY, now=1000), bad


def test_any_of_several_v1_values_verifies_during_a_rotation() -> None:
    old = sign(b"old-secret-0123456789abcdef01234", BODY, now=1000).split(",")[1]
    header = sign(SECRET, BODY, now=1000) + "," + old
    assert verify(SECRET, header, BODY, now=1000)
