"""Claim mapping: where a provider keeps the user id, the roles and the projects.

Identity providers disagree on claim names (Keycloak's roles live in
`realm_access.roles`, some put the user id in `uid` or `email`), so each of the three
is a dotted path into the token's claims. A mapped claim replaces the default one:
with the user claim `uid`, a token needs no `sub`. The values are type-checked the
same whichever path they come from, because the user id names the `user_{id}` room
and the roles and projects drive authorization.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..domain import Identity
from ..errors import AuthInvalid

USER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MISSING = object()


def lookup(claims: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (`realm_access.roles`), or `_MISSING`.

    A claim whose own name holds a dot (`https://example.com/roles`, as Auth0's
    namespaced claims do) is found by its whole name first.
    """
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


@dataclass(frozen=True)
class ClaimMap:
    """The dotted paths of the user id, roles and projects (SPEC 8's *_CLAIM settings)."""

    user: str = "sub"
    roles: str = "roles"
    projects: str = "projects"

    def __post_init__(self) -> None:
        for name in (self.user, self.roles, self.projects):
            if not name or any(not part for part in name.split(".")):
                raise ValueError(f"claim path {name!r} must be non-empty dotted names")

    def identity(self, claims: dict[str, Any]) -> Identity:
        """The Identity of verified claims; AuthInvalid if a mapped one is missing or ill-typed."""
        user_id = lookup(claims, self.user)
        if user_id is _MISSING:
            raise AuthInvalid(f'Token is missing the "{self.user}" claim')
        if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
            # The user's own room is user_{id}, so the id must be a valid room id.
            raise AuthInvalid(f"claim {self.user} must match [A-Za-z0-9_-]{{1,64}}")
        name = claims.get("name")
        if name is not None and not isinstance(name, str):
            raise AuthInvalid("claim name must be a string")
        return Identity(
            user_id=user_id,
            name=name,
            projects=string_set(lookup(claims, self.projects), self.projects),
            rooms=string_set(claims.get("rooms", _MISSING), "rooms"),
            roles=string_set(lookup(claims, self.roles), self.roles),
            expires_at=float(claims["exp"]),
        )


def string_set(value: Any, name: str) -> frozenset[str]:
    """A list-of-strings claim as a set; absent (or null) is empty."""
    if value is _MISSING or value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AuthInvalid(f"claim {name} must be a list of strings")
    return frozenset(value)
