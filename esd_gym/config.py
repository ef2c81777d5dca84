"""Loading and validating YAML configuration with pydantic, reported as one-line :class:`ConfigError` messages."""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml
from pydantic_core import PydanticCustomError

from esd_gym.errors import ConfigError

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

__all__ = ["StrictModel", "format_validation_error", "is_numeric_annotation", "load_yaml", "validate_config"]


def is_numeric_annotation(annotation: Any) -> bool:
    """Return whether a field annotation admits only numbers (int or float, optionally None) and so no boolean."""
    if typing.get_origin(annotation) is typing.Annotated:
        return is_numeric_annotation(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        return bool(members) and all(is_numeric_annotation(member) for member in members)
    return annotation in (int, float)


class StrictModel(pydantic.BaseModel):
    """Base of every configuration model: unknown keys are errors and values are checked on assignment.

    A boolean is rejected where a field takes only numbers: pydantic would read ``true`` as 1, so a YAML
    ``capacity: yes`` would silently become one sample.
    """

    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _reject_boolean_numbers(cls, data: Any) -> Any:
        # A model validator, because pydantic forbids field validators on the discriminator of a tagged union.
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(name)
                if isinstance(value, bool) and is_numeric_annotation(field.annotation):
                    raise PydanticCustomError(
                        "boolean_number", "expected a number, not a boolean", {"field": name, "value": value}
                    )
        return data


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
    location = tuple(first["loc"])
    context = first.get("ctx") or {}
    if first["type"] == "boolean_number":
        # Raised by StrictModel for the whole model: the field and its value are in the context.
        location += (context["field"],)
        first["input"] = context["value"]
    field = _location(location)
    if first["type"] == "extra_forbidden":
        return f"{source}: unknown key '{field}'"
    if first["type"] == "missing":
        return f"{source}: missing required key '{field}'"
    message = first["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if isinstance(first.get("input"), dict):
        # A model-level check (e.g. links per worker vs num_ps) names its fields in the message itself.
        return f"{source}: {message}" if not location else f"{source}: {field}: {message}"
    value = first.get("input")
    shown = repr(value)
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, typing.Hashable):
                continue
            if key in first_line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}, first given on line {first_line[key]}", key_node.start_mark
                )
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Read a YAML file; a missing file, a syntax error or a duplicate key becomes a :class:`ConfigError`.

    Syntax errors and duplicate keys are reported as ``file:line:column``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except UnicodeDecodeError as error:
        line = error.object.count(b"\n", 0, error.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{error.object[error.start]:02x})") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read configuration ({error.strerror})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML ({problem})") from None
