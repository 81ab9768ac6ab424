"""The command line's parser and messages, in process (no server is started).

`serve` and `token` are run end to end in tests/e2e/test_cli_serve.py; here are the
parts a user reads: --version, --help, the option per setting, and one-line errors.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest

from roomcast import cli
from roomcast.config import Settings

LONG_SECRET = "unit-cli-secret-0123456789abcdef0123456789"


def serve_help(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def option_line(help_text: str, option: str) -> str:
    """An option's entry in the help, joined into one line (a long option's help
    starts on the line below it)."""
    lines = help_text.splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"\s+{re.escape(option)}\b(?!-)", line):
            entry = [line]
            for more in lines[i + 1 :]:
                if not more.strip() or re.match(r"\s+-", more):
                    break
                entry.append(more.strip())
            return " ".join(entry)
    raise AssertionError(f"{option} not in help:\n{help_text}")


def test_version_is_the_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"roomcast {importlib.metadata.version('roomcast')}"


def test_help_names_every_setting_with_meaning_default_and_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = serve_help(monkeypatch, capsys)
    for name, field in Settings.model_fields.items():
        line = option_line(text, "--" + name.replace("_", "-"))
        assert f"env ROOMCAST_{name.upper()}" in line, line
        assert "default: " in line, line
        assert field.description and field.description.split(" (default:")[0] in line, line
    assert "(default: 8000; env ROOMCAST_PORT)" in option_line(text, "--port")
    assert "default: json" in option_line(text, "--log-format")
    assert "{json,console}" in option_line(text, "--log-format")


def test_help_never_shows_a_secret_and_says_what_a_computed_default_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROOMCAST_JWT_SECRET", LONG_SECRET)  # the environment is not help
    text = serve_help(monkeypatch, capsys)
    assert LONG_SECRET not in text
    assert "default: unset" in option_line(text, "--jwt-secret")
    assert "default: empty" in option_line(text, "--api-keys")
    assert "default: host-pid-random" in option_line(text, "--instance-id")


def test_bool_settings_take_a_bare_flag_a_value_or_no(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = cli.build_parser()

    def tls(*argv: str) -> bool:
        return cli._settings_from(parser.parse_args(["serve", *argv])).redis_tls

    assert tls() is False
    assert tls("--redis-tls") is True
    assert tls("--redis-tls", "true") is True
    assert tls("--redis-tls=false") is False
    assert tls("--no-redis-tls") is False
    assert "--no-redis-tls is false" in option_line(serve_help(monkeypatch, capsys), "--redis-tls")


def test_workers_is_not_an_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--workers", "2"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --workers 2" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["serve", "--api-keys", "k"], ["token", "--user", "u1"]])
def test_a_short_secret_is_one_line_saying_how_to_make_one(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "tiny-xyz-secret"
    assert cli.main([*command, "--jwt-secret", secret]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1, captured.err
    assert "ROOMCAST_JWT_SECRET (--jwt-secret) must be at least 32 bytes" in captured.err
    assert "secrets.token_urlsafe(32)" in captured.err
    assert secret not in captured.err
    assert "validation error" not in captured.err  # not pydantic's dump


def test_several_bad_settings_are_one_line_naming_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROOMCAST_LOG_LEVEL", "loud")
    assert cli.main(["serve", "--port", "70000", "--jwt-secret", LONG_SECRET]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("roomcast serve: invalid setting: ")
    assert "ROOMCAST_PORT (--port): " in err and "ROOMCAST_LOG_LEVEL (--log-level): " in err


def test_demo_and_app_do_not_combine(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--demo", "--app", "examples.custom_app:factory"]) == 2
    assert "--demo and --app do not combine" in capsys.readouterr().err


def test_app_must_be_a_factory_not_an_application(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "built_already.py").write_text(
        "class App:\n    roomcast = object()\n\napp = App()\n\ndef factory(settings):\n"
        "    return App()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(cli.UsageError, match="is an application; give a factory"):
        cli.load_factory("built_already:app")
    assert cli.load_factory("built_already:factory").__name__ == "factory"


def test_a_secret_of_exactly_32_bytes_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["token", "--user", "u1", "--jwt-secret", "x" * 32]) == 0
    assert capsys.readouterr().out.count(".") == 2  # a JWT
