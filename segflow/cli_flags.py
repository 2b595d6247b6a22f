"""Command-line flags generated from the settings fields, and the parser every command shares.

A flag is a setting set from the command line, so it is declared once, on the settings model:
its help text, default and ``[env: SEGFLOW_<SECTION>__<KEY>]`` are read from the field, and its
value goes through the model's validation like any other source (flags > env > file >
defaults). A command adopts the layer with one call per section or field::

    flags = SettingFlags(parser, UploadSettings)
    flags.section("upload", names={"import_name": "--import"}, skip=("linger_ms",))
    flags.field("kafka.topic_partitions", "--partitions")
    ...
    settings = settings_from(args, UploadSettings)  # in the handler

``settings_from`` builds the process model (``segflow.settings_load``), configures logging from
it and reports unknown ``SEGFLOW_*`` variables and TOML keys as warnings.

``SegflowArgumentParser`` turns argparse's usage errors into one line (exit 2), like every
other segflow error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar

import shtab
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from segflow.errors import ExitCode
from segflow.logs import configure_logging
from segflow.settings import SegflowSettings
from segflow.settings_load import ConfigWarning, env_name, load_settings

# shtab's completion of a path argument: ``action.complete = COMPLETE_FILE``.
COMPLETE_FILE: dict[str, Any] = shtab.FILE
DEST_PREFIX = "setting:"
FLAGS_KEY = "_setting_flags"
S = TypeVar("S", bound=SegflowSettings)
log = logging.getLogger("segflow.settings")
_warned: set[str] = set()


class SegflowArgumentParser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``segflow upload: error: ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        """Print one line and exit 2."""
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


class SettingFlags:
    """Adds flags for settings fields to one parser; their values override the settings."""

    def __init__(self, parser: argparse.ArgumentParser, model: type[SegflowSettings]) -> None:
        self._parser = parser
        self._model = model
        existing = parser.get_default(FLAGS_KEY)
        self._flags: dict[str, str] = existing if isinstance(existing, dict) else {}
        parser.set_defaults(**{FLAGS_KEY: self._flags})
        if parser.epilog is None:
            parser.epilog = settings_epilog(model)

    def section(
        self,
        section: str,
        *,
        only: Iterable[str] | None = None,
        skip: Iterable[str] = (),
        names: Mapping[str, str] | None = None,
    ) -> SettingFlags:
        """One flag per field of ``section`` (``--max-errors`` for ``max_errors``)."""
        sub = self._section_model(section)
        chosen = list(only) if only is not None else list(sub.model_fields)
        skipped = set(skip)
        for key in chosen:
            if key not in skipped:
                self.field(f"{section}.{key}", (names or {}).get(key))
        return self

    def field(
        self, path: str, flag: str | None = None, *, help_text: str | None = None
    ) -> SettingFlags:
        """One flag for the setting ``section.key`` (default name: ``--key-with-dashes``)."""
        section, _, key = path.partition(".")
        sub = self._section_model(section)
        if key not in sub.model_fields:
            raise KeyError(f"{sub.__name__} has no field {key!r}")
        info = sub.model_fields[key]
        option = flag or "--" + key.replace("_", "-")
        kwargs: dict[str, Any] = {
            "dest": DEST_PREFIX + path,
            "default": None,
            "help": _escape(help_text or _help(section, key, info)),
        }
        choices = _literal_choices(info.annotation)
        if _is_bool(info.annotation):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif choices:
            kwargs["choices"] = choices
            kwargs["metavar"] = "{" + ",".join(choices) + "}"
        else:
            kwargs["metavar"] = _metavar(key, info.annotation)
        action = self._parser.add_argument(option, **kwargs)
        if _is_path(info.annotation):
            action.complete = COMPLETE_FILE  # type: ignore[attr-defined]
        self._flags[path] = option
        return self

    def _section_model(self, section: str) -> type[BaseModel]:
        info = self._model.model_fields.get(section)
        annotation = info.annotation if info is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            raise KeyError(f"{self._model.__name__} has no section {section!r}")
        return annotation


def settings_from(args: argparse.Namespace | None, model: type[S]) -> S:
    """The validated settings of a command: flags > env > file > defaults.

    Also configures logging from them and warns (once per process) about unknown
    ``SEGFLOW_*`` variables and file keys. Raises ``ConfigError`` (exit 2) on a bad value.
    """
    overrides: dict[str, Any] = {}
    flags: dict[str, str] = {}
    if args is not None:
        for dest, value in vars(args).items():
            if dest.startswith(DEST_PREFIX) and value is not None:
                overrides[dest.removeprefix(DEST_PREFIX)] = value
        flags = dict(getattr(args, FLAGS_KEY, None) or {})
    settings, warnings = load_settings(model, overrides, flags)
    configure_logging(settings.log)
    report_warnings(warnings)
    return settings


def report_warnings(warnings: Iterable[ConfigWarning]) -> None:
    """Log each warning once per process."""
    for warning in warnings:
        if warning.name in _warned:
            continue
        _warned.add(warning.name)
        log.warning(warning.message, extra={"fields": {"setting": warning.name}})


def settings_epilog(model: type[SegflowSettings]) -> str:
    """Which settings a command reads (generated, so the names never drift)."""
    sections = [
        name
        for name, info in model.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
    ]
    envs = ", ".join(env_name(section) + "__*" for section in sections)
    files = ", ".join(f"[{section}]" for section in sections)
    return (
        f"Settings: {envs} (or {files} in the SEGFLOW_CONFIG_FILE TOML file); "
        "flags win over env, env over the file. Every key: README 'Configuration'."
    )


# --- output for scripts -------------------------------------------------------------------


def add_output_flag(parser: argparse.ArgumentParser) -> None:
    """``--output text|json``: json prints one machine-readable document on stdout."""
    parser.add_argument(
        "--output",
        "-o",
        choices=["text", "json"],
        default="text",
        help="text for people (default) or json for scripts (stdout only; messages stay on stderr)",
    )


def print_json(document: Any) -> None:
    """One JSON document on one line of stdout (``jq`` reads it; so does ``json.loads``)."""
    sys.stdout.write(json.dumps(document, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# --- field metadata -> argparse -----------------------------------------------------------


def _help(section: str, key: str, info: FieldInfo) -> str:
    text = (info.description or key.replace("_", " ")).rstrip(".")
    default = field_default(info)
    if default is not None:
        text += f" (default: {default})"
    return f"{text} [env: {env_name(section, key)}]"


def field_default(info: FieldInfo) -> str | None:
    """A field's default as shown in help and docs (``None``: no meaningful default)."""
    if info.default is not PydanticUndefined:
        value = info.default
    elif info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    else:
        return None
    if value is None or value in ([], {}):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


def _escape(text: str) -> str:
    return text.replace("%", "%%")


def _unwrap(annotation: Any) -> list[Any]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return [annotation]


def _is_bool(annotation: Any) -> bool:
    return _unwrap(annotation) == [bool]


def _is_path(annotation: Any) -> bool:
    return Path in _unwrap(annotation)


def _literal_choices(annotation: Any) -> list[str]:
    for arg in _unwrap(annotation):
        if typing.get_origin(arg) is Literal:
            return [str(choice) for choice in typing.get_args(arg)]
    return []


def type_name(annotation: Any) -> str:
    """A short type for docs: ``int``, ``float``, ``path``, ``a / b`` for choices, ``list``..."""
    choices = _literal_choices(annotation)
    if choices:
        return " / ".join(choices)
    names = []
    for wrapped in _unwrap(annotation):
        kind = wrapped
        origin = typing.get_origin(kind)
        if origin is typing.Annotated:
            kind = typing.get_args(kind)[0]
            origin = typing.get_origin(kind)
        if origin in (list, tuple, set):
            names.append("list")
        elif origin is dict:
            names.append("JSON object")
        elif kind is Path:
            names.append("path")
        elif isinstance(kind, type):
            names.append({"SecretStr": "str"}.get(kind.__name__, kind.__name__))
        else:
            names.append(str(kind))
    return " or ".join(dict.fromkeys(names))


def _metavar(key: str, annotation: Any) -> str:
    kinds = _unwrap(annotation)
    if Path in kinds:
        return "PATH"
    if int in kinds:
        return "N"
    if float in kinds:
        return "S" if key.endswith("_s") else "X"
    return key.rsplit("_", 1)[-1].upper()
