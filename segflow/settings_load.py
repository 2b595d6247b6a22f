"""Build a process's settings and say, in one line each, which value was bad and where it was set.

``segflow/settings.py`` defines the models; this module is how commands build them:

- every value goes through the model's validation, flags included (they are passed as init
  arguments, the highest-priority source);
- a bad value becomes one line naming where it came from: the flag (``--port 99999``), the
  environment variable (``SEGFLOW_SERVE__PORT=99999``) or the file key
  (``segflow.toml: [serve] port = 99999``), raised as ``ConfigError`` (exit 2);
- ``SEGFLOW_*`` variables and TOML keys that no process reads are reported as warnings (with
  the closest known name), since pydantic-settings ignores them silently: a mistyped
  ``SEGFLOW_KAFKA_BOOTSTRAP_SERVERS`` or a ``[kafak]`` section would otherwise just not apply.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import NoDecode, SettingsError

from segflow.errors import ExitCode, SegflowError
from segflow.settings import CONFIG_FILE_ENV, SegflowSettings

ENV_PREFIX = "SEGFLOW_"
NESTED = "__"
# SEGFLOW_* variables that are not settings (read by a script, an image or the tests).
RESERVED_ENV = frozenset(
    {
        CONFIG_FILE_ENV,
        "SEGFLOW_DEBUG",  # tracebacks on errors (segflow/cli.py)
        "SEGFLOW_HEALTH_PORT",  # the image's HEALTHCHECK (Dockerfile)
        "SEGFLOW_TOPIC_PARTITIONS",  # docker-compose.yml's kafka-init
        "SEGFLOW_API_KEYS",  # docker-compose.yml's interpolation
    }
)
RESERVED_ENV_PREFIXES = ("SEGFLOW_TEST_", "SEGFLOW_BENCH_")
_SECRET_NAME = re.compile(r"password|secret|token|credential|api_key", re.IGNORECASE)

S = TypeVar("S", bound=SegflowSettings)


class ConfigError(SegflowError):
    """Invalid configuration: one line per bad value, exit 2."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines), ExitCode.USAGE)
        self.lines = lines


@dataclass(frozen=True)
class ConfigWarning:
    """A name set somewhere that no segflow process reads."""

    name: str
    message: str


def env_name(*path: str) -> str:
    """``SEGFLOW_<SECTION>__<KEY>`` of a settings path."""
    return ENV_PREFIX + NESTED.join(part.upper() for part in path)


def load_settings(
    model: type[S],
    overrides: Mapping[str, Any] | None = None,
    flag_names: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[S, list[ConfigWarning]]:
    """Validate ``model`` from flags (``overrides``, ``"section.key" -> value``), env, file.

    Raises ``ConfigError`` (every bad value, one line each, naming its source).
    """
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    flag_names = dict(flag_names or {})
    config_path, file_data = _read_config_file(environ)
    problems = _env_json_problems(environ)
    if problems:
        raise ConfigError(problems)
    init: dict[str, Any] = {}
    for path, value in overrides.items():
        section, _, key = path.partition(".")
        if key:
            init.setdefault(section, {})[key] = value
        else:
            init[section] = value
    try:
        settings = model(**init)
    except ValidationError as exc:
        raise ConfigError(
            [
                _describe(error, model, overrides, flag_names, environ, config_path, file_data)
                for error in exc.errors()
            ]
        ) from None
    except SettingsError as exc:
        raise ConfigError([f"environment: {exc}"]) from None
    warnings = unknown_env(environ)
    if config_path is not None:
        warnings += unknown_file_keys(config_path, file_data)
    return settings, warnings


# --- what every process reads -------------------------------------------------------------


def process_models() -> list[type[SegflowSettings]]:
    """Every process model (subclasses of ``SegflowSettings``, also those added later)."""
    found: list[type[SegflowSettings]] = []
    pending = list(SegflowSettings.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def section_models() -> dict[str, type[BaseModel]]:
    """Section name -> section model, over every process."""
    sections: dict[str, type[BaseModel]] = {}
    models: list[type[BaseModel]] = [SegflowSettings, *process_models()]
    for model in models:
        for name, info in model.model_fields.items():
            sub = _model_type(info)
            if sub is not None:
                sections[name] = sub
    return sections


def _model_type(info: FieldInfo) -> type[BaseModel] | None:
    annotation = info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_mapping(info: FieldInfo) -> bool:
    return typing.get_origin(info.annotation) is dict


def _needs_json(info: FieldInfo) -> bool:
    """pydantic-settings decodes these from env as JSON (no ``NoDecode`` marker)."""
    if any(meta is NoDecode or isinstance(meta, NoDecode) for meta in info.metadata):
        return False
    origin = typing.get_origin(info.annotation)
    return origin in (dict, list, set, tuple)


def known_env_names() -> set[str]:
    """Every ``SEGFLOW_<SECTION>[__<KEY>]`` some process reads (upper case)."""
    names = set()
    for section, sub in section_models().items():
        names.add(env_name(section))
        names.update(env_name(section, key) for key in sub.model_fields)
    return names


def unknown_env(environ: Mapping[str, str]) -> list[ConfigWarning]:
    """``SEGFLOW_*`` variables no process reads, each with the closest known name."""
    known = known_env_names()
    sections = section_models()
    warnings = []
    for raw in sorted(environ):
        name = raw.upper()
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV or name in known:
            continue
        if name.startswith(RESERVED_ENV_PREFIXES):
            continue
        parts = name.removeprefix(ENV_PREFIX).lower().split(NESTED)
        sub = sections.get(parts[0])
        if len(parts) > 2 and sub is not None:
            info = sub.model_fields.get(parts[1])
            if info is not None and (_is_mapping(info) or _model_type(info) is not None):
                continue  # SEGFLOW_KAFKA__EXTRA__<property>: a key of a mapping
        hint = _closest(name.removeprefix(ENV_PREFIX), [k.removeprefix(ENV_PREFIX) for k in known])
        hint = ENV_PREFIX + hint if hint else None
        warnings.append(
            ConfigWarning(
                raw, f"unknown setting {raw} ignored" + (f" (did you mean {hint}?)" if hint else "")
            )
        )
    return warnings


def unknown_file_keys(path: Path, data: Mapping[str, Any]) -> list[ConfigWarning]:
    """Sections and keys of the TOML file that no process reads."""
    sections = section_models()
    warnings = []
    for section, body in data.items():
        sub = sections.get(section)
        if sub is None:
            hint = _closest(section, sections)
            warnings.append(
                ConfigWarning(
                    f"[{section}]",
                    f"{path}: unknown section [{section}] ignored"
                    + (f" (did you mean [{hint}]?)" if hint else ""),
                )
            )
            continue
        if not isinstance(body, dict):
            continue  # a type error the validation reports
        for key in body:
            if key not in sub.model_fields:
                hint = _closest(key, sub.model_fields)
                warnings.append(
                    ConfigWarning(
                        f"[{section}] {key}",
                        f"{path}: unknown key [{section}] {key} ignored"
                        + (f" (did you mean {hint}?)" if hint else ""),
                    )
                )
    return warnings


def _closest(name: str, candidates: typing.Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return matches[0] if matches else None


# --- sources of a bad value ---------------------------------------------------------------


def _read_config_file(environ: Mapping[str, str]) -> tuple[Path | None, dict[str, Any]]:
    value = environ.get(CONFIG_FILE_ENV)
    if not value:
        return None, {}
    path = Path(value)
    if not path.is_file():
        raise ConfigError([f"{CONFIG_FILE_ENV}={value}: no such file"])
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None


def _env_json_problems(environ: Mapping[str, str]) -> list[str]:
    """Variables holding JSON (sections, mappings, lists) that do not parse, named."""
    sections = section_models()
    problems = []
    for raw, value in sorted(environ.items()):
        parts = raw.upper().removeprefix(ENV_PREFIX).lower().split(NESTED)
        if not raw.upper().startswith(ENV_PREFIX) or parts[0] not in sections:
            continue
        if len(parts) == 1:
            needs_json = True
        elif len(parts) == 2:
            info = sections[parts[0]].model_fields.get(parts[1])
            needs_json = info is not None and _needs_json(info)
        else:
            needs_json = False
        if not needs_json:
            continue
        try:
            json.loads(value)
        except ValueError as exc:
            problems.append(f"{raw}: not valid JSON ({exc})")
    return problems


def _describe(
    error: Mapping[str, Any],
    model: type[SegflowSettings],
    overrides: Mapping[str, Any],
    flag_names: Mapping[str, str],
    environ: Mapping[str, str],
    config_path: Path | None,
    file_data: Mapping[str, Any],
) -> str:
    """One line: where the bad value was set, the value, and what is wrong with it."""
    loc = tuple(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    secret = _is_secret(model, loc)
    shown = "<hidden>" if secret else _short(error.get("input"))
    dotted = ".".join(loc[:2])
    if dotted in overrides:
        flag = flag_names.get(dotted, dotted)
        return f"{flag} {shown}: {message}"
    for name in _env_candidates(loc):
        actual = _env_lookup(environ, name)
        if actual is not None:
            return f"{actual}={shown}: {message}"
    value = _file_lookup(file_data, loc)
    if config_path is not None and value is not _MISSING:
        key = f"[{loc[0]}] {'.'.join(loc[1:])}" if len(loc) > 1 else f"[{loc[0]}]"
        return f"{config_path}: {key} = {shown}: {message}"
    return f"{'.'.join(loc) or 'settings'} {shown}: {message}"


_MISSING = object()


def _env_candidates(loc: tuple[str, ...]) -> Iterator[str]:
    for depth in range(len(loc), 0, -1):
        yield env_name(*loc[:depth])


def _env_lookup(environ: Mapping[str, str], name: str) -> str | None:
    """The variable as spelt in the environment (names are case-insensitive)."""
    for key in environ:
        if key.upper() == name:
            return key
    return None


def _file_lookup(data: Mapping[str, Any], loc: tuple[str, ...]) -> Any:
    node: Any = data
    for part in loc[:2]:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _is_secret(model: type[BaseModel], loc: tuple[str, ...]) -> bool:
    """Whether the value at ``loc`` is a secret (never echoed in an error)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if _SECRET_NAME.search(part):
            return True
        if current is None:
            return False
        info = current.model_fields.get(part)
        if info is None:
            return False
        if mentions_secret(info.annotation):
            return True
        current = _model_type(info)
    return False


def mentions_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or args:
        return any(mentions_secret(arg) for arg in args)
    return False


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = repr(text) if isinstance(value, str) and (not text or " " in text) else text
    return text if len(text) <= 60 else text[:57] + "..."
