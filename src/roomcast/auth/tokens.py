"""JWT verification and minting.

Algorithms are pinned by the key type the operator configured, never read from the
token, so `alg: none` and HS/RS confusion are refused by construction.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from typing import Any

import jwt

from ..domain import Identity
from ..errors import AuthExpired, AuthInvalid, AuthMissing

ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]
USER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
NUMERIC_DATES = ("exp", "nbf", "iat")


class TokenVerifier:
    """Checks access tokens and room tokens against one configured key."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        audience: str = "",
        issuer: str = "",
        leeway_seconds: float = 0,
    ) -> None:
        if not secret and not public_key:
            raise ValueError("a JWT secret or public key is required")
        self._key: Any = secret if secret else public_key
        self._algorithms = ["HS256"] if secret else ASYMMETRIC_ALGORITHMS
        self._audience = audience or None
        self._issuer = issuer or None
        self._leeway = leeway_seconds

    def _decode(self, token: object, required: list[str]) -> dict[str, Any]:
        if token is None or token == "":
            raise AuthMissing("no token given: send auth {token} or an Authorization header")
        if not isinstance(token, str):
            raise AuthInvalid("token must be a string")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={
                    "require": required,
                    "verify_aud": self._audience is not None,
                    # PyJWT's time checks run int() on the claim, so "9999999999" (a
                    # string) or true passed them: `_check_times` does them instead.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            # PyJWTError, not just InvalidTokenError: a token naming the other key
            # family (ES256 against an RSA key) raises InvalidKeyError.
            raise AuthInvalid(f"invalid token: {exc}") from None
        self._check_times(claims)
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        """Refuse time claims that are not NumericDates (RFC 7519 2), then check them.

        The comparisons are PyJWT's: expired when `exp <= now - leeway`, not yet
        valid when `nbf` or `iat` is after `now + leeway`.
        """
        for name in NUMERIC_DATES:
            value = claims.get(name)
            if name in claims and not _is_numeric_date(value):
                raise AuthInvalid(f"claim {name} must be a number (a NumericDate)")
        now = time.time()
        if claims["exp"] <= now - self._leeway:
            raise AuthExpired("token expired")
        for name in ("nbf", "iat"):
            if name in claims and claims[name] > now + self._leeway:
                raise AuthInvalid(f"token not yet valid (claim {name} is in the future)")

    def verify_access(self, token: object) -> Identity:
        """Return the identity of a valid access token.

        Raises AuthMissing, AuthInvalid (malformed, bad signature, wrong algorithm,
        audience or issuer, missing or ill-typed claims) or AuthExpired.
        """
        claims = self._decode(token, ["sub", "exp"])
        sub = claims["sub"]
        if not isinstance(sub, str) or not USER_ID.fullmatch(sub):
            # The user's own room is user_{sub}, so sub must be a valid room id.
            raise AuthInvalid("claim sub must match [A-Za-z0-9_-]{1,64}")
        name = claims.get("name")
        if name is not None and not isinstance(name, str):
            raise AuthInvalid("claim name must be a string")
        return Identity(
            user_id=sub,
            name=name,
            projects=_string_set(claims, "projects"),
            rooms=_string_set(claims, "rooms"),
            roles=_string_set(claims, "roles"),
            expires_at=float(claims["exp"]),
        )

    def is_room_token_valid(self, token: str, user_id: str, room: str) -> bool:
        """True when `token` is a room token for exactly this user and room."""
        try:
            claims = self._decode(token, ["sub", "exp", "room"])
        except (AuthInvalid, AuthExpired, AuthMissing):
            return False
        return claims.get("sub") == user_id and claims.get("room") == room


def _is_numeric_date(value: object) -> bool:
    # bool is an int to Python, and JSON's NaN or Infinity parse as floats.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _string_set(claims: dict[str, Any], name: str) -> frozenset[str]:
    value = claims.get(name)
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AuthInvalid(f"claim {name} must be a list of strings")
    return frozenset(value)


def mint_access_token(
    secret: str,
    user_id: str,
    *,
    name: str | None = None,
    projects: Iterable[str] = (),
    rooms: Iterable[str] = (),
    roles: Iterable[str] = (),
    ttl_seconds: float = 3600,
    audience: str = "",
    issuer: str = "",
    algorithm: str = "HS256",
) -> str:
    """An access token for development and tests (production tokens come from the platform)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": int(now + ttl_seconds)}
    if name:
        claims["name"] = name
    for key, values in (("projects", projects), ("rooms", rooms), ("roles", roles)):
        listed = list(values)
        if listed:
            claims[key] = listed
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=algorithm)


def mint_room_token(
    secret: str,
    user_id: str,
    room: str,
    *,
    ttl_seconds: float = 3600,
    audience: str = "",
    issuer: str = "",
    algorithm: str = "HS256",
) -> str:
    """A room token: lets `user_id` join `room` alone, until it expires.

    Room tokens are checked like access tokens, audience and issuer included.
    """
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "room": room,
        "iat": now,
        "exp": int(now + ttl_seconds),
    }
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm=algorithm)
