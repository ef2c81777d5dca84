"""Loading and validating YAML configuration with pydantic, reported as one-line :class:`ConfigError` messages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from esd_gym.errors import ConfigError

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

__all__ = ["StrictModel", "format_validation_error", "load_yaml", "validate_config"]


class StrictModel(pydantic.BaseModel):
    """Base of every configuration model: unknown keys are errors and values are checked on assignment."""

    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def _location(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<root>"


def format_validation_error(error: pydantic.ValidationError, source: str) -> str:
    """Turn the first pydantic error into ``SOURCE: FIELD: problem (got VALUE)``."""
    first = error.errors(include_url=False)[0]
    field = _location(tuple(first["loc"]))
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{field}'"
    if first["type"] == "missing":
        return f"{source}: missing required key '{field}'"
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    value = first.get("input")
    shown = repr(value) if not isinstance(value, dict) else "{...}"
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{source}: {field}: {message} (got {shown})"


def validate_config(model: type[ModelT], data: Any, source: str) -> ModelT:
    """Validate ``data`` against ``model``; raise :class:`ConfigError` naming ``source``, the field and the value."""
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Read a YAML file; a missing file or a syntax error becomes a :class:`ConfigError` with file:line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read configuration ({error.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML ({problem})") from None
