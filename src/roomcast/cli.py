"""The command line: `roomcast serve` and `roomcast token`.

Every setting is a flag named like its variable (`ROOMCAST_REDIS_URL` is
`--redis-url`); a flag overrides the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Callable, Sequence

from pydantic import SecretStr, ValidationError

from .auth.tokens import mint_access_token, mint_room_token
from .config import Settings
from .errors import RoomcastError


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_text = field.description or f"ROOMCAST_{name.upper()}"
        parser.add_argument(flag, dest=name, default=None, help=help_text)


def _settings_from(args: argparse.Namespace) -> Settings:
    given = {
        name: getattr(args, name)
        for name in Settings.model_fields
        if getattr(args, name, None) is not None
    }
    return Settings(**given)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roomcast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--demo", action="store_true", help="random secret and API key, demo page")
    serve.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (needs Redis)"
    )
    _add_setting_flags(serve)

    token = sub.add_parser("token", help="mint a development access token or room token")
    token.add_argument("--user", required=True, help="the sub claim")
    token.add_argument("--name", help="display name")
    token.add_argument("--project", action="append", default=[], help="repeatable")
    token.add_argument("--room", action="append", default=[], help="repeatable")
    token.add_argument("--role", action="append", default=[], help="repeatable (e.g. admin)")
    token.add_argument("--ttl", type=float, default=3600, help="seconds until expiry")
    token.add_argument("--for-room", help="mint a room token for this room instead")
    token.add_argument("--jwt-secret", dest="jwt_secret", help="ROOMCAST_JWT_SECRET")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "token":
            return _token(args)
        return _serve(args)
    except ValidationError as exc:
        print(f"roomcast: invalid setting: {exc}", file=sys.stderr)
        return 2


def _token(args: argparse.Namespace) -> int:
    settings = Settings(**({"jwt_secret": args.jwt_secret} if args.jwt_secret else {}))
    if settings.jwt_secret is None:
        print("roomcast token: set ROOMCAST_JWT_SECRET or pass --jwt-secret", file=sys.stderr)
        return 2
    secret = settings.jwt_secret.get_secret_value()
    if args.for_room:
        print(
            mint_room_token(
                secret,
                args.user,
                args.for_room,
                ttl_seconds=args.ttl,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
            )
        )
    else:
        print(
            mint_access_token(
                secret,
                args.user,
                name=args.name,
                projects=args.project,
                rooms=args.room,
                roles=args.role,
                ttl_seconds=args.ttl,
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
            )
        )
    return 0


def _serve(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    if args.demo:
        if settings.jwt_secret is None and settings.jwt_public_key is None:
            settings.jwt_secret = SecretStr(secrets.token_urlsafe(32))
        if not settings.api_key_list:
            settings.api_keys = SecretStr("demo-" + secrets.token_urlsafe(16))
        _print_demo(settings)
    missing = settings.missing_for_serving()
    if missing:
        print(
            "roomcast serve: set "
            + " and ".join(missing)
            + " (or run `roomcast serve --demo` to try it with random ones)",
            file=sys.stderr,
        )
        return 2
    from .server import serve

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(settings, demo=args.demo))
    except RoomcastError as exc:
        print(f"roomcast serve: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (it comes with uvicorn[standard]), as uvicorn would."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _print_demo(settings: Settings) -> None:
    if settings.jwt_secret is None:
        return
    secret = settings.jwt_secret.get_secret_value()
    key = settings.api_key_list[0]
    token = mint_access_token(
        secret, "demo-user", name="Demo User", projects=["demo"], ttl_seconds=86400
    )
    base = f"http://{settings.host}:{settings.port}"
    body = (
        '{"room":"project_demo","type":"project_progress_update",'
        '"data":{"total":10,"completed":3,"percent":30}}'
    )
    print(
        f"""roomcast demo
  JWT secret : {secret}
  API key    : {key}
  token      : {token}
               (user demo-user, project demo, valid 24 h)
  demo page  : {base}/demo

connect and listen (Python):
  .venv/bin/python examples/listen.py {base} {token} project_demo
publish (another shell):
  curl -s -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
    -d '{body}' {base}/api/v1/publish
""",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
