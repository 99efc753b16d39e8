"""The one config style: frozen pydantic models whose fields map one to one onto CLI flags and TOML keys.

Subclass :class:`Config`, give every field a default and a comment, check cross-field rules in a
``@model_validator(mode="after")`` that raises ``ValueError`` with a message naming the key and the fix,
and nest sub-configs as fields (a nested model is a TOML table). Constructing one with a bad value,
an unknown key or a wrong type raises :class:`probes.errors.InputError` that names the key, so the CLI
prints it without a traceback.

>>> class Demo(Config):
...     steps: int = 10  # optimisation steps
...     rate: float = 0.1  # learning rate
>>> Demo(steps=3).steps
3
>>> Demo.parse({"steps": 3, "colour": "red"})
Traceback (most recent call last):
probes.config.ConfigError: Bad Demo: colour: Extra inputs are not permitted
>>> Demo(steps="many")
Traceback (most recent call last):
probes.config.ConfigError: Bad Demo: steps: Input should be a valid integer, unable to parse string as an integer
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from probes.errors import InputError

__all__ = ["Config", "ConfigError", "describe_validation_error"]


def _problems(err: ValidationError) -> list[tuple[str, str]]:
    """``(key path, message)`` per problem; a nested config's own problems get the outer key prefixed."""
    out = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        inner = (e.get("ctx") or {}).get("error")
        if isinstance(inner, ConfigError):
            out += [(f"{loc}.{sub}" if loc and sub else loc or sub, msg) for sub, msg in inner.problems]
        else:
            out.append((loc, str(e["msg"]).removeprefix("Value error, ")))
    return out


def describe_validation_error(err: ValidationError, what: str) -> str:
    """One line per problem, ``key.sub: message``, from a pydantic error."""
    return f"Bad {what}: " + "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in _problems(err))


class ConfigError(InputError):
    """A config that failed validation; ``problems`` lists ``(key path, message)``."""

    def __init__(self, message: str, problems: list[tuple[str, str]]):
        super().__init__(message)
        self.problems = problems


class Config(BaseModel):
    """Base of every subspace-lens config (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            message = describe_validation_error(err, type(self).__name__)
            raise ConfigError(message, _problems(err)) from None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> Self:
        """A config from a dict (e.g. JSON or TOML); unknown keys and bad values raise InputError."""
        if not isinstance(data, dict):
            raise InputError(f"A {cls.__name__} must be a table of keys, got {type(data).__name__}.")
        return cls(**data)

    @classmethod
    def from_toml(cls, path: str | Path) -> Self:
        """Read a config from a TOML file."""
        p = Path(path)
        if not p.is_file():
            raise InputError(f"Config file {p} does not exist.")
        try:
            data = tomllib.loads(p.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"{p} is not valid TOML: {err}") from None
        return cls.parse(data)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists); ``parse(to_json())`` gives an equal config."""
        return self.model_dump(mode="json")
