"""Access and room token verification (SPEC section 3)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from roomcast.auth.claims import ClaimMap
from roomcast.auth.tokens import TokenVerifier, mint_access_token, mint_room_token
from roomcast.config import Settings
from roomcast.errors import AuthExpired, AuthInvalid, AuthMissing

SECRET = "unit-test-secret-0123456789abcdef-0123456789abcdef"
OTHER_SECRET = "another-secret-0123456789abcdef-0123456789abcdefgh"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "u1", "exp": int(time.time()) + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def hand_made_hs256(payload: dict[str, Any], key: bytes) -> str:
    """An HS256 token built without PyJWT (which refuses a PEM as an HMAC key)."""
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT'})}.{b64json(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(secret=SECRET)


# valid tokens --------------------------------------------------------------------------


def test_hs256_access_token(verifier: TokenVerifier) -> None:
    exp = int(time.time()) + 600
    token = hs256(
        claims(
            exp=exp,
            name="Ann",
            projects=["p1", "p2"],
            rooms=["annotation_a1"],
            roles=["admin"],
        )
    )
    identity = verifier.verify_access(token)
    assert identity.user_id == "u1"
    assert identity.name == "Ann"
    assert identity.projects == frozenset({"p1", "p2"})
    assert identity.rooms == frozenset({"annotation_a1"})
    assert identity.roles == frozenset({"admin"})
    assert identity.is_admin is True
    assert identity.expires_at == float(exp)


def test_optional_claims_default_to_empty(verifier: TokenVerifier) -> None:
    identity = verifier.verify_access(hs256(claims()))
    assert identity.name is None
    assert identity.projects == frozenset()
    assert identity.rooms == frozenset()
    assert identity.roles == frozenset()
    assert identity.is_admin is False


def test_float_time_claims_are_numeric_dates(verifier: TokenVerifier) -> None:
    now = time.time()
    token = hs256(claims(exp=now + 600.5, nbf=now - 1.5, iat=now - 1.5))
    assert verifier.verify_access(token).expires_at == now + 600.5


def test_minted_token_verifies(verifier: TokenVerifier) -> None:
    token = mint_access_token(SECRET, "u9", name="Zed", projects=["p1"], roles=["viewer"])
    identity = verifier.verify_access(token)
    assert (identity.user_id, identity.name, identity.projects, identity.roles) == (
        "u9",
        "Zed",
        frozenset({"p1"}),
        frozenset({"viewer"}),
    )


def test_rs256_with_public_key(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = TokenVerifier(public_key=public_pem(rsa_key))
    token = jwt.encode(claims(sub="rs-user"), rsa_key, algorithm="RS256")
    assert verifier.verify_access(token).user_id == "rs-user"


def test_es256_with_public_key(ec_key: ec.EllipticCurvePrivateKey) -> None:
    verifier = TokenVerifier(public_key=public_pem(ec_key))
    token = jwt.encode(claims(sub="es-user"), ec_key, algorithm="ES256")
    assert verifier.verify_access(token).user_id == "es-user"


def test_rs256_signed_by_another_key_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    verifier = TokenVerifier(public_key=public_pem(rsa_key))
    with pytest.raises(AuthInvalid):
        verifier.verify_access(jwt.encode(claims(), other, algorithm="RS256"))


def test_a_key_is_required() -> None:
    with pytest.raises(ValueError):
        TokenVerifier()
    with pytest.raises(ValueError):
        TokenVerifier(secret="", public_key="")


# refused tokens -------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, ""])
def test_missing_token(verifier: TokenVerifier, token: object) -> None:
    with pytest.raises(AuthMissing) as info:
        verifier.verify_access(token)
    assert info.value.code == "auth_missing"


@pytest.mark.parametrize("token", [123, b"abc", ["x"], {"token": "x"}])
def test_non_string_token(verifier: TokenVerifier, token: object) -> None:
    with pytest.raises(AuthInvalid):
        verifier.verify_access(token)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "a.b", "..", "Bearer x.y.z"])
def test_malformed_token(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(AuthInvalid) as info:
        verifier.verify_access(token)
    assert info.value.code == "auth_invalid"


@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
def test_alg_none_is_refused(verifier: TokenVerifier, signature: str) -> None:
    token = f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{b64json(claims())}.{signature}"
    with pytest.raises(AuthInvalid):
        verifier.verify_access(token)


def test_alg_none_is_refused_with_a_public_key(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = TokenVerifier(public_key=public_pem(rsa_key))
    token = f"{b64json({'alg': 'none'})}.{b64json(claims())}."
    with pytest.raises(AuthInvalid):
        verifier.verify_access(token)


def test_hs256_signed_with_the_public_key_is_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = public_pem(rsa_key)
    verifier = TokenVerifier(public_key=pem)
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hand_made_hs256(claims(), pem.encode()))


def test_hand_made_hs256_is_accepted_with_the_right_secret(verifier: TokenVerifier) -> None:
    # The forging helper itself is sound: the refusal above is the algorithm's, not the helper's.
    assert verifier.verify_access(hand_made_hs256(claims(), SECRET.encode())).user_id == "u1"


def test_rs256_token_when_a_secret_is_configured(
    verifier: TokenVerifier, rsa_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(AuthInvalid):
        verifier.verify_access(jwt.encode(claims(), rsa_key, algorithm="RS256"))


def test_es256_token_when_an_rsa_key_is_configured(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier = TokenVerifier(public_key=public_pem(rsa_key))
    with pytest.raises(AuthInvalid):
        verifier.verify_access(jwt.encode(claims(), ec_key, algorithm="ES256"))


def test_rs256_token_when_an_ec_key_is_configured(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier = TokenVerifier(public_key=public_pem(ec_key))
    with pytest.raises(AuthInvalid):
        verifier.verify_access(jwt.encode(claims(), rsa_key, algorithm="RS256"))


def test_room_token_of_the_wrong_key_family_is_just_invalid(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    verifier = TokenVerifier(public_key=public_pem(rsa_key))
    token = jwt.encode(claims(room="annotation_a1"), ec_key, algorithm="ES256")
    assert verifier.is_room_token_valid(token, "u1", "annotation_a1") is False


def test_bad_signature(verifier: TokenVerifier) -> None:
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hs256(claims(), OTHER_SECRET))


def test_tampered_payload(verifier: TokenVerifier) -> None:
    header, _, signature = hs256(claims()).split(".")
    forged = f"{header}.{b64json(claims(roles=['admin']))}.{signature}"
    with pytest.raises(AuthInvalid):
        verifier.verify_access(forged)


@pytest.mark.parametrize("missing", ["sub", "exp"])
def test_required_claim_missing(verifier: TokenVerifier, missing: str) -> None:
    payload = claims()
    del payload[missing]
    with pytest.raises(AuthInvalid) as info:
        verifier.verify_access(hs256(payload))
    assert missing in info.value.message


def test_expired(verifier: TokenVerifier) -> None:
    with pytest.raises(AuthExpired) as info:
        verifier.verify_access(hs256(claims(exp=int(time.time()) - 5)))
    assert info.value.code == "auth_expired"


def test_leeway_accepts_a_slightly_expired_token() -> None:
    token = hs256(claims(exp=int(time.time()) - 5))
    assert TokenVerifier(secret=SECRET, leeway_seconds=60).verify_access(token).user_id == "u1"
    with pytest.raises(AuthExpired):
        TokenVerifier(secret=SECRET, leeway_seconds=1).verify_access(token)


def test_non_numeric_exp(verifier: TokenVerifier) -> None:
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hs256(claims(exp="tomorrow")))


@pytest.mark.parametrize("sub", [42, ["u1"], {"id": "u1"}, "", "x" * 65, True])
def test_ill_typed_sub(verifier: TokenVerifier, sub: object) -> None:
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hs256(claims(sub=sub)))


@pytest.mark.parametrize("claim", ["projects", "rooms", "roles"])
@pytest.mark.parametrize("value", ["p1", {"p1": True}, 7, [["p1"]], [None], [{"id": "p1"}]])
def test_list_claims_must_be_lists_of_strings(
    verifier: TokenVerifier, claim: str, value: object
) -> None:
    with pytest.raises(AuthInvalid) as info:
        verifier.verify_access(hs256(claims(**{claim: value})))
    assert claim in info.value.message


def test_name_must_be_a_string(verifier: TokenVerifier) -> None:
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hs256(claims(name=["Ann"])))


# RFC 7519 section 2: exp, nbf and iat are NumericDates, JSON numbers. PyJWT runs int()
# on them, so a string of digits or a boolean passed its checks.
FUTURE = int(time.time()) + 3600
PAST = int(time.time()) - 3600


@pytest.mark.parametrize(
    "value", [str(FUTURE), "9999999999", True, [FUTURE], {"t": FUTURE}, "1e10", "  9999999999"]
)
def test_exp_must_be_a_number(verifier: TokenVerifier, value: object) -> None:
    with pytest.raises(AuthInvalid) as info:
        verifier.verify_access(hs256(claims(exp=value)))
    assert "exp" in info.value.message


def test_exp_as_a_past_string_is_invalid_not_expired(verifier: TokenVerifier) -> None:
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hs256(claims(exp=str(PAST))))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
@pytest.mark.parametrize("value", [str(PAST), "0", True, False, [PAST], None])
def test_nbf_and_iat_must_be_numbers(verifier: TokenVerifier, claim: str, value: object) -> None:
    payload = claims()
    payload[claim] = value
    with pytest.raises(AuthInvalid) as info:
        verifier.verify_access(hs256(payload))
    assert claim in info.value.message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_time_claims_must_be_finite(verifier: TokenVerifier, value: float) -> None:
    # json.dumps writes NaN and Infinity, and json.loads reads them back as floats.
    payload = claims()
    payload["iat"] = value
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hs256(payload))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_nbf_and_iat_in_the_future_are_refused_beyond_the_leeway(claim: str) -> None:
    token = hs256(claims(**{claim: int(time.time()) + 30}))
    with pytest.raises(AuthInvalid):
        TokenVerifier(secret=SECRET).verify_access(token)
    assert TokenVerifier(secret=SECRET, leeway_seconds=60).verify_access(token).user_id == "u1"


@pytest.mark.parametrize("claim", ["projects", "rooms", "roles"])
@pytest.mark.parametrize("value", [[7, "p8"], [True], [1.5]])
def test_list_claims_hold_strings_only(verifier: TokenVerifier, claim: str, value: object) -> None:
    with pytest.raises(AuthInvalid) as info:
        verifier.verify_access(hs256(claims(**{claim: value})))
    assert claim in info.value.message


@pytest.mark.parametrize("name", [42, True, {"first": "Ann"}])
def test_name_of_another_type(verifier: TokenVerifier, name: object) -> None:
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hs256(claims(name=name)))


def test_room_token_with_a_string_exp_is_not_valid(verifier: TokenVerifier) -> None:
    token = hs256(claims(room="annotation_a1", exp="9999999999"))
    assert verifier.is_room_token_valid(token, "u1", "annotation_a1") is False


# audience and issuer --------------------------------------------------------------------


def test_audience_checked_when_configured() -> None:
    verifier = TokenVerifier(secret=SECRET, audience="roomcast")
    assert verifier.verify_access(hs256(claims(aud="roomcast"))).user_id == "u1"
    assert verifier.verify_access(hs256(claims(aud=["other", "roomcast"]))).user_id == "u1"
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hs256(claims(aud="other")))
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hs256(claims()))


def test_audience_ignored_when_not_configured(verifier: TokenVerifier) -> None:
    assert verifier.verify_access(hs256(claims(aud="anything"))).user_id == "u1"


def test_issuer_checked_when_configured() -> None:
    verifier = TokenVerifier(secret=SECRET, issuer="https://platform")
    assert verifier.verify_access(hs256(claims(iss="https://platform"))).user_id == "u1"
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hs256(claims(iss="https://evil")))
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hs256(claims()))


def test_minted_token_with_audience_and_issuer() -> None:
    verifier = TokenVerifier(secret=SECRET, audience="rc", issuer="plat")
    token = mint_access_token(SECRET, "u1", audience="rc", issuer="plat")
    assert verifier.verify_access(token).user_id == "u1"
    with pytest.raises(AuthInvalid):
        verifier.verify_access(mint_access_token(SECRET, "u1", audience="rc"))


# room tokens ------------------------------------------------------------------------------


def test_room_token_valid_for_same_user_and_room(verifier: TokenVerifier) -> None:
    token = mint_room_token(SECRET, "u1", "annotation_a1")
    assert verifier.is_room_token_valid(token, "u1", "annotation_a1") is True


@pytest.mark.parametrize(
    ("user", "room"),
    [("u2", "annotation_a1"), ("u1", "annotation_a2"), ("u1", "annotation_a1x")],
)
def test_room_token_refused_for_another_user_or_room(
    verifier: TokenVerifier, user: str, room: str
) -> None:
    token = mint_room_token(SECRET, "u1", "annotation_a1")
    assert verifier.is_room_token_valid(token, user, room) is False


def test_room_token_needs_a_room_claim(verifier: TokenVerifier) -> None:
    # An access token is not a room token.
    assert verifier.is_room_token_valid(hs256(claims()), "u1", "annotation_a1") is False


def test_room_token_expired_or_badly_signed(verifier: TokenVerifier) -> None:
    expired = hs256(claims(room="annotation_a1", exp=int(time.time()) - 5))
    forged = mint_room_token(OTHER_SECRET, "u1", "annotation_a1")
    assert verifier.is_room_token_valid(expired, "u1", "annotation_a1") is False
    assert verifier.is_room_token_valid(forged, "u1", "annotation_a1") is False
    assert verifier.is_room_token_valid("", "u1", "annotation_a1") is False
    assert verifier.is_room_token_valid("junk", "u1", "annotation_a1") is False


def test_room_token_alg_none(verifier: TokenVerifier) -> None:
    token = f"{b64json({'alg': 'none'})}.{b64json(claims(room='annotation_a1'))}."
    assert verifier.is_room_token_valid(token, "u1", "annotation_a1") is False


def test_room_token_signed_with_rs256(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = TokenVerifier(public_key=public_pem(rsa_key))
    token = jwt.encode(claims(room="project_p1"), rsa_key, algorithm="RS256")
    assert verifier.is_room_token_valid(token, "u1", "project_p1") is True
    assert verifier.is_room_token_valid(token, "u1", "project_p2") is False


# several secrets and claim mapping (SPEC 8) -------------------------------------------------


def test_any_of_several_secrets_verifies() -> None:
    verifier = TokenVerifier(secret=SECRET, secrets=[OTHER_SECRET, SECRET])
    assert verifier.verify_access(hs256(claims(), SECRET)).user_id == "u1"
    assert verifier.verify_access(hs256(claims(), OTHER_SECRET)).user_id == "u1"
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hs256(claims(), "a-third-secret-0123456789abcdef-0123456789"))


def test_a_claim_error_under_the_second_secret_is_not_a_key_error() -> None:
    verifier = TokenVerifier(secrets=[SECRET, OTHER_SECRET], audience="rc")
    with pytest.raises(AuthInvalid) as info:
        verifier.verify_access(hs256(claims(aud="other"), OTHER_SECRET))
    assert "audience" in info.value.message.lower()
    with pytest.raises(AuthExpired):
        verifier.verify_access(hs256(claims(aud="rc", exp=int(time.time()) - 5), OTHER_SECRET))


def test_secrets_and_a_public_key_at_once(rsa_key: rsa.RSAPrivateKey) -> None:
    verifier = TokenVerifier(secrets=[SECRET], public_key=public_pem(rsa_key))
    assert verifier.verify_access(hs256(claims())).user_id == "u1"
    assert verifier.verify_access(jwt.encode(claims(), rsa_key, algorithm="RS256")).user_id == "u1"


def test_settings_give_every_source_and_the_claim_map() -> None:
    settings = Settings(
        jwt_secret=SECRET,
        jwt_secrets=OTHER_SECRET,
        jwt_user_claim="uid",
        jwt_roles_claim="realm_access.roles",
        api_keys="k",
    )
    verifier = TokenVerifier.from_settings(settings)
    token = hs256({"uid": "ann", "exp": int(time.time()) + 60, "realm_access": {"roles": ["r"]}})
    identity = verifier.verify_access(token)
    assert (identity.user_id, identity.roles) == ("ann", frozenset({"r"}))
    assert verifier.jwks is None


def mapped(**paths: str) -> TokenVerifier:
    return TokenVerifier(secret=SECRET, claims=ClaimMap(**paths))


def test_dotted_paths_map_roles_and_projects() -> None:
    verifier = mapped(roles="realm_access.roles", projects="ext.platform.projects")
    token = hs256(
        claims(
            roles=["ignored"],
            realm_access={"roles": ["annotator", "reviewer"]},
            ext={"platform": {"projects": ["p1"]}},
        )
    )
    identity = verifier.verify_access(token)
    assert identity.roles == {"annotator", "reviewer"}
    assert identity.projects == {"p1"}


def test_a_mapped_user_claim_replaces_sub() -> None:
    verifier = mapped(user="uid")
    assert verifier.verify_access(hs256(claims(sub=None, uid="ann"))).user_id == "ann"
    assert verifier.verify_access(hs256(claims(sub="other", uid="ann"))).user_id == "ann"
    with pytest.raises(AuthInvalid) as info:
        verifier.verify_access(hs256(claims()))  # sub alone is no longer enough
    assert "uid" in info.value.message


def test_a_claim_name_with_dots_is_found_whole_first() -> None:
    verifier = mapped(roles="https://platform.example/roles")
    token = hs256(claims(**{"https://platform.example/roles": ["admin"]}))
    assert verifier.verify_access(token).roles == {"admin"}


@pytest.mark.parametrize("value", [42, ["ann"], "", "a b", "x" * 65, True, {"id": "ann"}])
def test_a_mapped_user_id_is_type_checked(value: object) -> None:
    with pytest.raises(AuthInvalid):
        mapped(user="profile.uid").verify_access(hs256(claims(profile={"uid": value})))


@pytest.mark.parametrize("value", ["admin", [1], [["a"]], {"a": 1}, [None]])
def test_mapped_roles_and_projects_are_type_checked(value: object) -> None:
    verifier = mapped(roles="realm_access.roles", projects="org.projects")
    with pytest.raises(AuthInvalid) as info:
        verifier.verify_access(hs256(claims(realm_access={"roles": value})))
    assert "realm_access.roles" in info.value.message
    with pytest.raises(AuthInvalid):
        verifier.verify_access(hs256(claims(org={"projects": value})))


def test_a_path_through_a_non_object_is_absent() -> None:
    verifier = mapped(roles="realm_access.roles")
    assert verifier.verify_access(hs256(claims(realm_access=["x"]))).roles == frozenset()
    assert verifier.verify_access(hs256(claims(realm_access=None))).roles == frozenset()


@pytest.mark.parametrize("path", ["", ".", "a..b", "a."])
def test_empty_claim_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        ClaimMap(user=path)
