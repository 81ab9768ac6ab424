"""The command line: `roomcast serve`, `roomcast token` and `roomcast --version`.

Every setting is an option named like its variable (`ROOMCAST_REDIS_URL` is
`--redis-url`); an option given on the command line wins over the environment.
`roomcast serve --help` prints each one's meaning and default from the Settings
fields themselves, so the help cannot drift from what the server reads.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import re
import secrets
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from . import __version__
from .auth.tokens import mint_access_token, mint_room_token
from .config import Settings
from .errors import RoomcastError

if typing.TYPE_CHECKING:
    from .server import AppFactory

#: "(default: host-pid-random)" in a description: what a default_factory makes.
STATED_DEFAULT = re.compile(r"\s*\(default: ([^)]*)\)")
EXAMPLE_FACTORY = "def factory(settings): return roomcast.create_app(settings, ...)"


class UsageError(Exception):
    """A command line that cannot run; main() prints it on one line and exits 2."""


# -- settings as options ---------------------------------------------------------------


def _variable(name: str) -> str:
    return f"ROOMCAST_{name.upper()}"


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _is_bool(field: FieldInfo) -> bool:
    return field.annotation is bool


def _metavar(field: FieldInfo) -> str:
    annotation = field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        return "{" + ",".join(str(choice) for choice in typing.get_args(annotation)) + "}"
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    names: dict[object, str] = {int: "INT", float: "NUMBER", SecretStr: "SECRET"}
    return names.get(annotation, "TEXT")


def _default_text(field: FieldInfo) -> str:
    """The default as help shows it: a secret's never, a computed one's in words."""
    if field.default_factory is not None:
        said = STATED_DEFAULT.search(field.description or "")
        return said.group(1) if said else "computed at start"
    value = field.default
    if value is PydanticUndefined or value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "empty" if not value.get_secret_value() else "set"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return "empty"
    return str(value)


def _help(name: str, field: FieldInfo, extra: str = "") -> str:
    meaning = STATED_DEFAULT.sub("", field.description or name.replace("_", " "))
    notes = [f"default: {_default_text(field)}", *([extra] if extra else [])]
    notes.append(f"env {_variable(name)}")
    return f"{meaning} ({'; '.join(notes)})".replace("%", "%%")  # argparse %-formats help


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "settings",
        "Each option is also the environment variable named in its help; the option wins.",
    )
    for name, field in Settings.model_fields.items():
        flag = _option(name)
        if _is_bool(field):
            # `--redis-tls`, `--redis-tls false` and `--no-redis-tls` all work, so an
            # environment file's `true`/`false` carries over to a command line as is.
            group.add_argument(
                flag,
                dest=name,
                nargs="?",
                const="true",
                default=None,
                metavar="BOOL",
                help=_help(name, field, f"a bare {flag} is true; --no-{flag[2:]} is false"),
            )
            group.add_argument(
                f"--no-{flag[2:]}",
                dest=name,
                action="store_const",
                const="false",
                help=argparse.SUPPRESS,
            )
        else:
            group.add_argument(
                flag, dest=name, default=None, metavar=_metavar(field), help=_help(name, field)
            )


def _settings_from(args: argparse.Namespace) -> Settings:
    given = {
        name: getattr(args, name)
        for name in Settings.model_fields
        if getattr(args, name, None) is not None
    }
    return Settings(**given)


def explain(exc: ValidationError) -> str:
    """A settings error as one line naming each variable; never the value given.

    The value is left out on purpose: the bad setting may be a secret.
    """
    parts: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = error.get("loc") or ()
        if loc and isinstance(loc[0], str):
            variable, option = _variable(loc[0]), _option(loc[0])
            if variable not in message:
                message = f"{variable} ({option}): {message}"
            elif option not in message:
                message = message.replace(variable, f"{variable} ({option})", 1)
        parts.append(message)
    return " ".join("; ".join(parts).split())


# -- the parser --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roomcast", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"roomcast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve",
        help="run the server",
        description=(
            "Run one roomcast instance under uvicorn: JSON logs, draining shutdown on "
            "SIGTERM. One process is one instance; for more cores run more processes "
            "over one Redis."
        ),
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="make up a secret and an API key when none is set, print them with a token, "
        "and serve a demo page at /demo whose /demo/token hands out tokens: never on a "
        "reachable server",
    )
    serve.add_argument(
        "--app",
        metavar="MODULE:FACTORY",
        help="serve your own application: FACTORY(settings) returns what "
        "roomcast.create_app returns (your room kinds, event types, join hook); "
        "MODULE is imported from the current directory or sys.path",
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
    token.add_argument(
        "--jwt-secret",
        dest="jwt_secret",
        metavar="SECRET",
        help="HS256 secret, at least 32 bytes (default: env ROOMCAST_JWT_SECRET)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "token":
            return _token(args)
        return _serve(args)
    except ValidationError as exc:
        print(f"roomcast {args.command}: invalid setting: {explain(exc)}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"roomcast {args.command}: {exc}", file=sys.stderr)
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
    if args.demo and args.app:
        raise UsageError("--demo and --app do not combine: the demo page is roomcast's own app")
    settings = _settings_from(args)
    factory = load_factory(args.app) if args.app else None
    if args.demo:
        if settings.jwt_secret is None and settings.jwt_public_key is None:
            settings.jwt_secret = SecretStr(secrets.token_urlsafe(32))
        if not settings.api_key_list:
            settings.api_keys = SecretStr("demo-" + secrets.token_urlsafe(16))
        _print_demo(settings)
    missing = settings.missing_for_serving()
    if missing:
        raise UsageError(
            "set "
            + " and ".join(missing)
            + " (or run `roomcast serve --demo` to try it with random ones)"
        )
    from .server import NotARoomcastApp, serve

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(serve(settings, demo=args.demo, app=factory))
    except NotARoomcastApp as exc:
        raise UsageError(f"--app {args.app}: {exc}") from None
    except RoomcastError as exc:
        print(f"roomcast serve: {exc.message}", file=sys.stderr)
        return 1
    return 0


def load_factory(spec: str) -> AppFactory:
    """Import `module:attr` (attr may be dotted) as uvicorn imports `module:app`.

    The current directory comes first on sys.path, as with uvicorn's default
    `--app-dir .`, so `roomcast serve --app myapp:factory` finds ./myapp.py.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UsageError(f"--app {spec!r}: expected MODULE:FACTORY, e.g. myapp.realtime:build")
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--app {spec}: cannot import {module_name}: {exc}") from None
    for part in attr.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise UsageError(f"--app {spec}: {module_name} has no {attr!r}") from None
    if hasattr(found, "roomcast"):
        raise UsageError(
            f"--app {spec} is an application; give a factory that builds it from the "
            f"settings the command line read ({EXAMPLE_FACTORY})"
        )
    if not callable(found):
        raise UsageError(f"--app {spec} is not callable ({EXAMPLE_FACTORY})")
    factory: AppFactory = found
    return factory


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
