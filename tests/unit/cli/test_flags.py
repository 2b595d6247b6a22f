"""The flag layer: generated from the settings fields, validated, one-line errors, exit 2."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from segflow.cli import build_parser
from segflow.cli_flags import DEST_PREFIX, settings_from
from segflow.settings import ServeSettings, UploadSettings
from segflow.settings_load import RESERVED_ENV, env_name, known_env_names, section_models
from tests.unit.cli.conftest import Run

Segflow = Callable[..., Run]


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _parsers(sub)


def test_every_setting_flag_shows_its_field_description_default_and_env_name() -> None:
    checked = 0
    sections = section_models()
    for parser in _parsers(build_parser()):
        for action in parser._actions:
            if not action.dest.startswith(DEST_PREFIX):
                continue
            section, _, key = action.dest.removeprefix(DEST_PREFIX).partition(".")
            info = sections[section].model_fields[key]
            assert action.help is not None
            assert action.help.endswith(f"[env: {env_name(section, key)}]"), action.help
            if info.description and "(default" not in (action.help or ""):
                assert info.description.rstrip(".").replace("%", "%%") in action.help
            checked += 1
    assert checked >= 20


def test_no_help_text_names_an_env_var_that_does_not_exist() -> None:
    """Env names in help are generated; a hand-typed one that drifted fails here."""
    known = known_env_names() | RESERVED_ENV
    texts = []
    for parser in _parsers(build_parser()):
        texts += [parser.description or "", parser.epilog or ""]
        texts += [action.help or "" for action in parser._actions]
    named = set(re.findall(r"SEGFLOW_[A-Z0-9_]+", " ".join(texts)))
    assert named, "help texts should name the settings"
    for name in named:
        assert name in known or name.rstrip("_") in known, name


def test_flags_win_over_env_and_go_through_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEGFLOW_UPLOAD__STRICT", "true")
    monkeypatch.setenv("SEGFLOW_UPLOAD__MAX_ERRORS", "3")
    monkeypatch.setenv("SEGFLOW_UPLOAD__LINGER_MS", "7")
    args = build_parser().parse_args(
        ["upload", "--no-strict", "--max-errors", "0.5%", "--timeout", "12", "f.ndjson"]
    )
    settings = settings_from(args, UploadSettings)
    assert settings.upload.strict is False
    assert settings.upload.max_errors == "0.5%"
    assert settings.upload.timeout_s == 12.0
    assert settings.upload.linger_ms == 7  # env still applies to what no flag set


def test_serve_port_and_workers_are_validated(segflow: Segflow) -> None:
    run = segflow("serve", "--port", "99999", "--workers", "-5")
    assert run.code == 2
    assert run.err_lines == [
        "segflow: error: --port 99999: Input should be less than or equal to 65535",
        "segflow: error: --workers -5: Input should be greater than or equal to 0",
    ]


def test_bad_max_errors_is_one_line_naming_the_flag(segflow: Segflow) -> None:
    run = segflow("upload", "--max-errors", "lots", "x.ndjson")
    assert run.code == 2
    assert run.err_lines == [
        "segflow: error: --max-errors lots: expected a count N or a share N% of the lines "
        "read, e.g. 10 or 0.5%"
    ]


def test_bad_env_value_names_the_variable(
    segflow: Segflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGFLOW_CONSUMER__BATCH_SIZE", "0")
    run = segflow("consume")
    assert run.code == 2
    assert run.err_lines == [
        "segflow: error: SEGFLOW_CONSUMER__BATCH_SIZE=0: Input should be greater than or equal to 1"
    ]


def test_bad_file_value_names_the_file_and_key(
    segflow: Segflow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "segflow.toml"
    config.write_text("[serve]\nport = 99999\n[kafka]\nsasl_password = 5\n")
    monkeypatch.setenv("SEGFLOW_CONFIG_FILE", str(config))
    run = segflow("serve")
    assert run.code == 2
    # serve reads [kafka] too (its ingestion routes produce like `segflow upload`).
    assert run.err_lines == [
        f"segflow: error: {config}: [kafka] sasl_password = <hidden>: Input should be a valid "
        "string",
        f"segflow: error: {config}: [serve] port = 99999: Input should be less than or equal to "
        "65535",
    ]
    run = segflow("config", "show", "--process", "client")
    assert run.code == 2
    assert run.err_lines == [
        f"segflow: error: {config}: [kafka] sasl_password = <hidden>: Input should be a valid "
        "string"
    ]


def test_invalid_json_in_env_and_missing_or_broken_file(
    segflow: Segflow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SEGFLOW_KAFKA__EXTRA", "linger.ms=5")
    run = segflow("config", "show")
    assert run.code == 2
    assert run.err_lines == [
        "segflow: error: SEGFLOW_KAFKA__EXTRA: not valid JSON (Expecting value: line 1 column 1 "
        "(char 0))"
    ]
    monkeypatch.delenv("SEGFLOW_KAFKA__EXTRA")
    monkeypatch.setenv("SEGFLOW_CONFIG_FILE", str(tmp_path / "nope.toml"))
    run = segflow("config", "show")
    assert (run.code, run.err_lines) == (
        2,
        [f"segflow: error: SEGFLOW_CONFIG_FILE={tmp_path / 'nope.toml'}: no such file"],
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("[kafka\n")
    run = segflow("--config", str(broken), "config", "show")
    assert run.code == 2
    assert len(run.err_lines) == 1
    assert run.err_lines[0].startswith(f"segflow: error: {broken}: invalid TOML: ")


def test_unknown_env_vars_and_file_keys_are_warned_about_by_name(
    segflow: Segflow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "segflow.toml"
    config.write_text('[kafak]\nbootstrap_servers = "x:1"\n[kafka]\nbootstrap_server = "y:1"\n')
    monkeypatch.setenv("SEGFLOW_CONFIG_FILE", str(config))
    monkeypatch.setenv("SEGFLOW_KAFKA_BOOTSTRAP_SERVERS", "z:1")
    monkeypatch.setenv("SEGFLOW_KAFKA__EXTRA__linger.ms", "5")  # a mapping key: known
    monkeypatch.setenv("SEGFLOW_TEST_ANYTHING", "1")  # reserved for the tests
    run = segflow("config", "show")
    assert run.code == 0
    warnings = [json.loads(line) for line in run.err_lines]
    assert [(w["level"], w["msg"]) for w in warnings] == [
        (
            "WARNING",
            "unknown setting SEGFLOW_KAFKA_BOOTSTRAP_SERVERS ignored "
            "(did you mean SEGFLOW_KAFKA__BOOTSTRAP_SERVERS?)",
        ),
        ("WARNING", f"{config}: unknown section [kafak] ignored (did you mean [kafka]?)"),
        (
            "WARNING",
            f"{config}: unknown key [kafka] bootstrap_server ignored "
            "(did you mean bootstrap_servers?)",
        ),
    ]
    shown = json.loads(run.out)
    assert shown["kafka"]["bootstrap_servers"] == "127.0.0.1:9092"
    assert shown["kafka"]["extra"] == {"linger.ms": "5"}


def test_argparse_errors_are_one_line_with_exit_2(segflow: Segflow) -> None:
    run = segflow("executions", "list", "--limit", "x")
    assert run.code == 2
    assert run.err_lines == [
        "segflow executions list: error: argument --limit: expected a whole number, got 'x' "
        "(see `segflow executions list --help`)"
    ]
    run = segflow("upload")
    assert run.code == 2
    assert run.err_lines == [
        "segflow upload: error: the following arguments are required: FILE "
        "(see `segflow upload --help`)"
    ]


def test_user_key_is_canonicalised_or_refused_with_exit_2(segflow: Segflow) -> None:
    run = segflow("user", "not a key")
    assert run.code == 2
    assert run.err_lines == [
        "segflow: error: user key: 'not a key' has no type prefix; expected one of "
        "account:..., email_hash:..., user_agent:..., email:..., user_id:..."
    ]
    run = segflow("user", "phone:123")
    assert run.code == 2
    assert run.err_lines == [
        "segflow: error: user key: unknown user key type 'phone'; expected one of account, "
        "email_hash, user_agent, email, user_id"
    ]


def test_help_lists_the_development_commands_apart(segflow: Segflow) -> None:
    run = segflow("--help")
    assert run.code == 0
    commands, _, development = run.out.partition("local development (not for production):")
    listed = {
        line.split()[0]
        for line in commands.split("commands:")[1].splitlines()[2:]
        if line.startswith("    ") and line.split()
    }
    assert {"upload", "consume", "serve", "db", "topics", "config"} <= listed
    assert not {"stack", "demo"} & listed
    assert [line.split()[0] for line in development.splitlines() if line.startswith("    ")][
        :2
    ] == [
        "stack",
        "demo",
    ]


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script_is_generated_from_the_parser(segflow: Segflow, shell: str) -> None:
    run = segflow("completion", shell)
    assert run.code == 0
    for word in ("upload", "executions", "--max-errors", "--output", "stack"):
        assert word in run.out, word


def test_serve_flags_reach_the_model_unchanged() -> None:
    args = build_parser().parse_args(["serve", "--port", "0", "--workers", "3", "--host", "::1"])
    serve = settings_from(args, ServeSettings).serve
    assert (serve.port, serve.workers, serve.host) == (0, 3, "::1")


def test_upload_usage_errors_are_one_line(segflow: Segflow, tmp_path: Path) -> None:
    missing = tmp_path / "missing.ndjson"
    run = segflow("upload", "--dry-run", str(missing))
    assert (run.code, run.err_lines) == (2, [f"segflow: error: no such file: {missing}"])
    run = segflow("upload", "--dry-run", "-", "-")
    assert (run.code, run.err_lines) == (
        2,
        ["segflow: error: standard input ('-') can be read only once"],
    )
    run = segflow("upload", "--format", "xml", "f")
    assert run.code == 2
    assert len(run.err_lines) == 1
    assert run.err_lines[0].startswith("segflow upload: error: argument --format: invalid choice")


def test_dry_run_json_output_is_the_execution(segflow: Segflow, tmp_path: Path) -> None:
    source = tmp_path / "v.ndjson"
    source.write_text('{"user": "u-1", "segment_id": 1, "user_status": "add"}\n')
    run = segflow("upload", "--dry-run", "-o", "json", str(source))
    assert run.code == 0, run.err
    document = json.loads(run.out)
    assert (document["status"], document["commands_produced"], document["dry_run"]) == (
        "SUCCEEDED",
        1,
        True,
    )
    assert document["file_name"] == "v.ndjson"
