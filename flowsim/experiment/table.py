"""One table of an experiment file, with its dotted location, for errors that name the key.

:class:`Table` reads a TOML table's keys with their types checked, refuses unknown keys, and
builds a configuration object from them, reporting a :class:`~flowsim._validation.ParamError`
under the key it names: every message is ``<file>: <dotted.key> <rule>; got <value>``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from flowsim._validation import ParamError
from flowsim.errors import UserError


class ConfigError(UserError):
    """An experiment file that cannot be run as written: one message, or several (one a line)."""

    def __init__(self, *messages: str) -> None:
        super().__init__("\n".join(messages))
        self.messages = list(messages)


#: At most this many problems of a file are reported at once (more would hide the first ones).
MAX_PROBLEMS = 5


class Problems:
    """The problems of one file, collected so that one pass reports them all (up to :data:`MAX_PROBLEMS`).

    ``problems.check(fn, *args)`` returns ``fn(*args)``, or None when it raised a
    :class:`ConfigError`, whose messages are kept; :meth:`raise_any` raises them together,
    one a line.  Each independent part of a file is checked so; a part that needs a failed
    one is skipped (its problems would only repeat the first).
    """

    def __init__(self) -> None:
        self.messages: list[str] = []

    def check(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except ConfigError as exc:
            self.messages += exc.messages
            if len(self.messages) >= MAX_PROBLEMS:
                self.raise_any()
            return None

    def raise_any(self) -> None:
        """Raise the problems found so far as one ConfigError (nothing when there are none)."""
        if not self.messages:
            return
        shown = self.messages[:MAX_PROBLEMS]
        if len(self.messages) >= MAX_PROBLEMS:
            shown.append(f"(at most {MAX_PROBLEMS} problems are reported at a time: fix these and run again)")
        raise ConfigError(*shown)


#: How a message names a TOML value's type.
_TYPE_WORDS = {int: "integer", str: "string", bool: "boolean (true or false)", float: "number"}


def a_or_an(word: str) -> str:
    """``word`` with its indefinite article: "an int", "a string"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


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
        """Refuse the keys not in ``keys``, every one of them at once."""
        unknown = [k for k in self.doc if k not in keys]
        if unknown:
            ok = ", ".join(sorted(keys))
            raise ConfigError(*(f"{self.source}: unknown key {self.key(k)!r}; allowed here: {ok}" for k in unknown))

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
            what = "finite number" if typ is float else _TYPE_WORDS.get(typ, typ.__name__)
            self.fail(k, v, f"must be {a_or_an(what)}")
        return float(v) if typ is float else v

    def build(self, cls: type, kwargs: dict[str, Any]) -> Any:
        """``cls(**kwargs)``, its errors reported under the key they name (carried as data)."""
        try:
            return cls(**kwargs)
        except ParamError as exc:
            self.fail(exc.key, exc.value, exc.rule)
