"""JWT verification and minting.

Algorithms are pinned by the key source the operator configured, never taken from
the token, so `alg: none` and HS/RS confusion are refused by construction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import jwt

from ..config import Settings
from ..domain import Identity
from ..errors import AuthExpired, AuthInvalid, AuthMissing
from .claims import ClaimMap
from .jwks import JWKS_ALGORITHMS, JwksKeys

ASYMMETRIC_ALGORITHMS = ["RS256", "ES256"]
NUMERIC_DATES = ("exp", "nbf", "iat")
# A candidate that fails with one of these was the wrong key: the next one may fit.
# Any other error (audience, issuer, a claim) means the signature was good.
WRONG_KEY = (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidKeyError)


class TokenVerifier:
    """Checks access tokens and room tokens against every configured key source.

    The sources are HS256 secrets (several, for rotation), a PEM public key and a
    JWKS URL; a token verified by any of them is accepted (SPEC 8). The token's `alg`
    header only picks which sources to try; each source then pins its own algorithms
    (a secret HS256, the PEM key RS256/ES256, a JWKS key its own), so `alg: none` and
    HS/RS confusion are refused by construction.
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        secrets: Sequence[str] = (),
        jwks_url: str = "",
        jwks: JwksKeys | None = None,
        claims: ClaimMap | None = None,
        audience: str = "",
        issuer: str = "",
        leeway_seconds: float = 0,
        unknown_kid_wait: float = 2.0,
    ) -> None:
        listed = [secret] if secret else []
        self._secrets = listed + [s for s in secrets if s and s not in listed]
        self._public_key = public_key or None
        self.jwks = jwks if jwks is not None else (JwksKeys(jwks_url) if jwks_url else None)
        if not self._secrets and not self._public_key and self.jwks is None:
            raise ValueError("a JWT secret, public key or JWKS URL is required")
        self._claims = claims or ClaimMap()
        self._audience = audience or None
        self._issuer = issuer or None
        self._leeway = leeway_seconds
        self._unknown_kid_wait = unknown_kid_wait

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """The verifier of SPEC 8's JWT settings: every secret, the PEM key, the JWKS URL."""
        public_key = settings.jwt_public_key
        return cls(
            secrets=settings.jwt_secret_list,
            public_key=public_key.get_secret_value() if public_key else None,
            jwks_url=settings.jwt_jwks_url,
            claims=ClaimMap(
                user=settings.jwt_user_claim,
                roles=settings.jwt_roles_claim,
                projects=settings.jwt_projects_claim,
            ),
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway_seconds=settings.jwt_leeway_seconds,
            unknown_kid_wait=settings.jwt_unknown_kid_wait_ms / 1000,
        )

    def _candidates(self, token: str) -> list[tuple[Any, list[str]]]:
        """(key, algorithms) pairs to try, chosen by the header's alg and kid.

        With shared secrets only, every candidate is HS256 whatever the header says
        (a token of another alg fails `jwt.decode`'s algorithm check): the header is
        not read twice, which was a third of a verification (PyJWT checks each
        segment's alphabet byte by byte in Python).
        """
        if self.jwks is None and not self._public_key:
            return [(secret, ["HS256"]) for secret in self._secrets]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthInvalid(f"invalid token: {exc}") from None
        alg = header.get("alg")
        if alg == "HS256":
            return [(secret, ["HS256"]) for secret in self._secrets]
        if alg not in JWKS_ALGORITHMS:
            return []
        found: list[tuple[Any, list[str]]] = []
        if self.jwks is not None:
            kid = header.get("kid")
            if kid is not None and not isinstance(kid, str):
                raise AuthInvalid("invalid token: header kid must be a string")
            found += [(key.key, [key.algorithm_name]) for key in self.jwks.get(kid)]
        if self._public_key:
            found.append((self._public_key, ASYMMETRIC_ALGORITHMS))
        return found

    def _decode(self, token: object, required: list[str]) -> dict[str, Any]:
        if token is None or token == "":
            raise AuthMissing("no token given: send auth {token} or an Authorization header")
        if not isinstance(token, str):
            raise AuthInvalid("token must be a string")
        candidates = self._candidates(token)
        if not candidates:
            raise AuthInvalid("invalid token: no configured key for its alg and kid")
        last: jwt.PyJWTError | None = None
        for key, algorithms in candidates:
            try:
                claims = self._decode_with(token, key, algorithms, required)
            except WRONG_KEY as exc:
                last = exc
                continue
            except jwt.PyJWTError as exc:
                raise AuthInvalid(f"invalid token: {exc}") from None
            self._check_times(claims)
            return claims
        raise AuthInvalid(f"invalid token: {last}")

    def _decode_with(
        self, token: str, key: Any, algorithms: list[str], required: list[str]
    ) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
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
        audience or issuer, an unknown kid, missing or ill-typed claims) or AuthExpired.
        The user id, roles and projects are read where the claim map says.
        """
        return self._claims.identity(self._decode(token, ["exp"]))

    async def verify_access_awaiting_keys(self, token: object) -> Identity:
        """verify_access, but a token whose kid the JWKS cache lacks awaits its fetch.

        A provider's new key may have been published after our last fetch: the
        connect waits (at most `unknown_kid_wait`) for the fetch the kid triggers,
        or the one in flight, then is verified again. That fetch is rate-limited,
        so a flood of forged kids costs the provider one request per interval, and
        connects whose kid is known never wait.
        """
        try:
            return self.verify_access(token)
        except AuthInvalid:
            kid = self._unknown_kid(token)
            if kid is None or self.jwks is None:
                raise
            if not await self.jwks.await_kid(kid, self._unknown_kid_wait):
                raise
        return self.verify_access(token)

    def _unknown_kid(self, token: object) -> str | None:
        """The token's kid, when it names a JWKS key the cache does not have."""
        if self.jwks is None or not isinstance(token, str):
            return None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        kid = header.get("kid")
        if header.get("alg") not in JWKS_ALGORITHMS or not isinstance(kid, str):
            return None
        return None if kid in self.jwks.known_kids() else kid

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
