"""One table of an experiment file, with its dotted location, for errors that name the key.

:class:`Table` reads a TOML table's keys with their types checked, refuses unknown keys, and
builds a configuration object from them, reporting a :class:`~flowsim._validation.ParamError`
under the key it names: every message is ``<file>: <dotted.key> <rule>; got <value>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from flowsim._validation import ParamError
from flowsim.errors import UserError


class ConfigError(UserError):
    """An experiment file that cannot be run as written."""


class Table:
    """One TOML table with its dotted location, for error messages."""

    def __init__(self, doc: Any, source: str, where: str) -> None:
        self.source, self.where = source, where
        if not isinstance(doc, Mapping):
            raise ConfigError(f"{source}: {where or 'the file'} must be a table; got {doc!r}")
        self.doc = doc

    def key(self, k: str) -> str:
        return f"{self.where}.{k}" if self.where else k

    def fail(self, k: str, value: Any, rule: str) -> None:
        raise ConfigError(f"{self.source}: {self.key(k)} {rule}; got {value!r}")

    def allow(self, keys: set[str]) -> None:
        for k in self.doc:
            if k not in keys:
                raise ConfigError(
                    f"{self.source}: unknown key {self.key(k)!r}; allowed here: {', '.join(sorted(keys))}"
                )

    def table(self, k: str, required: bool = False) -> Table:
        if k not in self.doc and required:
            raise ConfigError(f"{self.source}: missing required key {self.key(k)!r}")
        return Table(self.doc.get(k, {}), self.source, self.key(k))

    def get(self, k: str, typ: type, *, required: bool = False, default: Any = None) -> Any:
        if k not in self.doc:
            if required:
                raise ConfigError(f"{self.source}: missing required key {self.key(k)!r}")
            return default
        v = self.doc[k]
        ok = (isinstance(v, int | float) and not isinstance(v, bool)) if typ is float else isinstance(v, typ)
        if typ is int:
            ok = isinstance(v, int) and not isinstance(v, bool)
        if not ok or (typ is float and not math.isfinite(v)):
            self.fail(k, v, f"must be {'a finite number' if typ is float else 'a ' + typ.__name__}")
        return float(v) if typ is float else v

    def build(self, cls: type, kwargs: dict[str, Any]) -> Any:
        """``cls(**kwargs)``, its errors reported under the key they name (carried as data)."""
        try:
            return cls(**kwargs)
        except ParamError as exc:
            self.fail(exc.key, exc.value, exc.rule)
