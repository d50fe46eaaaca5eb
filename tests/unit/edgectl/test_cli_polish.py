"""``edgectl --version``, the global options before and after the subcommand, and the
shape of the command tree: every command runs a handler, and every command that prints a
result takes ``--json``."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

from edgectl.cli import _parser, main
from edgectl.parser_tree import commands, options
from tests.support.ports import free_port

#: Commands that print no result to parse: a whole local run, a shell script.
NO_RESULT = {("demo",), ("completion",)}


def test_version_is_the_installed_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"edgectl {metadata.version('edgefleet')}\n"


@pytest.mark.parametrize("where", ["before", "after"])
def test_url_is_accepted_before_and_after_the_subcommand(
    where: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGECTL_URL", f"http://127.0.0.1:{free_port()}")
    url = f"http://127.0.0.1:{free_port()}"
    cmd = ["devices", "list"]
    argv = ["--url", url, *cmd] if where == "before" else [*cmd, "--url", url]
    assert main(argv) == 3  # nothing listens there: the flag, not the environment, was used
    assert capsys.readouterr().err.startswith(
        f"edgectl: error: cannot reach the control plane at {url}:"
    )


def test_after_the_subcommand_wins_and_before_is_kept_when_not_repeated(
    capsys: pytest.CaptureFixture[str],
) -> None:
    first, last = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
    assert main(["--url", first, "rollouts", "show", "1", "--url", last]) == 3
    assert f"at {last}:" in capsys.readouterr().err
    assert main(["--url", first, "models", "show", "det", "--json"]) == 3
    assert f"at {first}:" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["before", "after"])
def test_token_and_verbose_are_accepted_after_the_subcommand_too(
    where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--token", "not a token", "-v", "--url", f"http://127.0.0.1:{free_port()}"]
    argv = [*flags, "fleets", "list"] if where == "before" else ["fleets", "list", *flags]
    assert main(argv) == 2  # the token given was checked (and refused) before any request
    err = capsys.readouterr().err
    assert err.startswith("edgectl: error: invalid API token: it may contain only letters")


def test_parsed_global_options_reach_the_command_in_either_position() -> None:
    parser = _parser()
    after = parser.parse_args(["pin", "clear", "--fleet", "f", "--token", "t", "-v"])
    assert (after.token, after.verbose, after.url) == ("t", True, None)
    before = parser.parse_args(["--token", "t", "-v", "pin", "clear", "--fleet", "f"])
    assert (before.token, before.verbose, before.url) == ("t", True, None)
    neither = parser.parse_args(["pin", "clear", "--fleet", "f"])
    assert (neither.token, neither.verbose, neither.url) == (None, False, None)


def test_every_command_runs_a_handler() -> None:
    for path, parser in commands(_parser()):
        assert callable(parser.get_default("handler")), " ".join(path)


def test_every_command_that_prints_a_result_takes_json() -> None:
    missing = [
        " ".join(path)
        for path, parser in commands(_parser())
        if path not in NO_RESULT and not any("--json" in a.option_strings for a in options(parser))
    ]
    assert missing == []


def test_keys_create_json_is_one_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "--out", str(tmp_path), "--role", "root", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["role"] == "root" and len(answer["key_id"]) == 64
    assert Path(answer["private_key"]) == tmp_path / "root.key"
    assert Path(answer["public_key"]) == tmp_path / "root.pub"
