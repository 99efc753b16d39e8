"""The config base: unknown keys, bad values and nested configs give one InputError naming the key path."""

from __future__ import annotations

import pytest
from pydantic import model_validator

from probes.config import Config
from probes.errors import InputError


class Inner(Config):
    steps: int = 10  # optimisation steps
    width: int = 4  # candidates per step

    @model_validator(mode="after")
    def _check(self):
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}.")
        return self


class Outer(Config):
    name: str = "x"
    inner: Inner = Inner()  # a nested config is a TOML table


def test_nested_errors_name_the_key_path_once():
    with pytest.raises(InputError) as err:
        Outer.parse({"inner": {"stepz": 1}})
    assert str(err.value) == "Bad Outer: inner.stepz: Extra inputs are not permitted"
    with pytest.raises(InputError, match=r"^Bad Outer: inner: steps must be >= 1, got 0\.$"):
        Outer.parse({"inner": {"steps": 0}})
    with pytest.raises(InputError, match=r"^Bad Inner: steps must be >= 1"):
        Inner(steps=0)


def test_toml_roundtrip_and_frozen(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('name = "y"\n[inner]\nsteps = 3\n')
    cfg = Outer.from_toml(p)
    assert cfg.inner.steps == 3 and Outer.parse(cfg.to_json()) == cfg
    with pytest.raises(Exception, match="frozen"):
        cfg.name = "z"
    p.write_text("name = ")
    with pytest.raises(InputError, match="not valid TOML"):
        Outer.from_toml(p)
    with pytest.raises(InputError, match="does not exist"):
        Outer.from_toml(tmp_path / "none.toml")
