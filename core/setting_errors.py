"""Bad settings in words a person can act on: one line per bad value, naming the environment
variable and the expected type, instead of pydantic's 40-line traceback."""

from __future__ import annotations

import os
import typing
from typing import Any

from pydantic import AliasChoices, BaseModel, ValidationError
from pydantic.fields import FieldInfo

from core.config import Settings

PREFIX = Settings.model_config.get("env_prefix", "")
DELIMITER = Settings.model_config.get("env_nested_delimiter") or "__"
TYPE_WORDS = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "text",
}


def describe(error: ValidationError) -> list[str]:
    """One line per invalid setting, e.g. ``COMPOSER_FEATURES__N_MFCC='abc': expected an
    integer from 4 to 40 (Input should be a valid integer, ...)``."""
    return [_line(item) for item in error.errors()]


def _line(item: dict[str, Any]) -> str:
    path = [str(part) for part in item["loc"]]
    field = _field(Settings, path)
    variable = _variable(path, field)
    expected = _expected(field) if field is not None else ""
    shown = f"={item['input']!r}" if isinstance(item.get("input"), str | int | float) else ""
    reason = item.get("msg", "invalid")
    return f"{variable}{shown}: {expected + ' (' + reason + ')' if expected else reason}"


def _field(model: type[BaseModel], path: list[str]) -> FieldInfo | None:
    """The pydantic field a location points at (a name or an alias; nested models too)."""
    fields = model.model_fields
    head, rest = path[0], path[1:]
    field = fields.get(head) or next(
        (f for f in fields.values() if head in _aliases(f)),
        None,
    )
    if field is None or not rest:
        return field
    nested = field.annotation
    if isinstance(nested, type) and issubclass(nested, BaseModel):
        return _field(nested, rest)
    return field


def _aliases(field: FieldInfo) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [alias] if isinstance(alias, str) else []


def _variable(path: list[str], field: FieldInfo | None) -> str:
    """The environment variable for a location: an alias as set (PORT), else
    COMPOSER_<FIELD>[__<NESTED>]."""
    aliases = _aliases(field) if field is not None else []
    if path[0] in aliases:
        return next((a for a in aliases if a in os.environ), path[0])
    return PREFIX.upper() + DELIMITER.join(part.upper() for part in path)


def _expected(field: FieldInfo) -> str:
    kinds = [
        kind
        for kind in (typing.get_args(field.annotation) or (field.annotation,))
        if kind is not type(None)
    ]
    words = " or ".join(
        TYPE_WORDS.get(kind, getattr(kind, "__name__", str(kind))) for kind in kinds
    )
    return f"expected {words}{_bounds(field)}"


def _bounds(field: FieldInfo) -> str:
    """``, >= 4 and <= 40`` from the field's Ge/Gt/Le/Lt constraints (annotated-types)."""
    found = {
        name: getattr(item, name)
        for item in field.metadata
        for name in ("ge", "gt", "le", "lt")
        if getattr(item, name, None) is not None
    }
    low = f">= {found['ge']}" if "ge" in found else f"> {found['gt']}" if "gt" in found else ""
    high = f"<= {found['le']}" if "le" in found else f"< {found['lt']}" if "lt" in found else ""
    parts = [p for p in (low, high) if p]
    return f", {' and '.join(parts)}" if parts else ""
