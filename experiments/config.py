"""TOML configuration of the `s2r` command line: documented defaults, validation, overrides.

The defaults live in ``experiments/default.toml`` (one commented key per setting, one section per
subcommand plus ``[run]``). :func:`load_config` reads them, merges a user file over them and
checks every key and type; :func:`apply_overrides` lays command-line flags over a section
(flags that were not given are ``None`` and leave the section alone). Precedence:
flags > user TOML > defaults.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_TOML = Path(__file__).resolve().parent / "default.toml"
"""The file that holds (and documents) every default."""

Config = dict[str, dict[str, Any]]


class ConfigError(ValueError):
    """A configuration file or override is invalid (names the file, section and key)."""


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from None


def default_config() -> Config:
    """The defaults of ``experiments/default.toml`` (a fresh copy)."""
    return copy.deepcopy(_read_toml(DEFAULT_TOML))


def _type_name(v: Any) -> str:
    return "list" if isinstance(v, list) else type(v).__name__


def _check_value(where: str, value: Any, default: Any) -> Any:
    """Check ``value`` against the type of ``default``; ints are accepted for floats."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(x, str) for x in value)
    else:  # pragma: no cover - default.toml holds only the types above
        ok = True
    if not ok:
        raise ConfigError(
            f"{where}: expected {_type_name(default)} (like the default {default!r}), "
            f"got {_type_name(value)} {value!r}"
        )
    return value


def merge(base: Config, user: Mapping[str, Any], source: str = "config") -> Config:
    """Lay ``user`` (parsed TOML) over ``base``; unknown sections/keys and wrong types raise.

    Args:
        base: a complete configuration (e.g. :func:`default_config`).
        user: sections -> keys -> values, any subset of ``base``.
        source: name of the file, used in error messages.
    """
    out = copy.deepcopy(base)
    for section, values in user.items():
        if section not in base:
            raise ConfigError(
                f"{source}: unknown section [{section}]; known sections: {sorted(base)}"
            )
        if not isinstance(values, Mapping):
            raise ConfigError(f"{source}: [{section}] must be a table of keys, got {values!r}")
        for key, value in values.items():
            if key not in base[section]:
                raise ConfigError(
                    f"{source}: unknown key '{key}' in [{section}]; "
                    f"known keys: {sorted(base[section])}"
                )
            out[section][key] = _check_value(
                f"{source}: [{section}] {key}", value, base[section][key]
            )
    return out


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Defaults, with the user's TOML file (if any) merged over them and validated.

    Raises:
        ConfigError: missing file, invalid TOML, unknown section or key, wrong value type.
    """
    config = default_config()
    if path is None:
        return config
    path = Path(path)
    return merge(config, _read_toml(path), str(path))


def apply_overrides(config: Config, section: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The ``section`` of ``config`` with the non-``None`` ``overrides`` (command-line flags) laid
    over it, type-checked like the TOML. Returns a new dict; ``config`` is unchanged."""
    if section not in config:
        raise ConfigError(f"unknown configuration section [{section}]")
    user = {k: v for k, v in overrides.items() if v is not None}
    return merge(config, {section: user}, "command line")[section]
