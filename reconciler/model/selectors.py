"""Label selectors as kubectl writes them (`-l`), parsed by hand and matched against labels.

    selector    := requirement ("," requirement)*
    requirement := KEY ("=" | "==" | "!=") VALUE
                 | KEY ("in" | "notin") "(" VALUE ("," VALUE)* ")"
                 | KEY | "!" KEY

Every requirement must hold. As in Kubernetes, `key!=value` and `key notin (...)` also match
objects without the label, and an empty selector matches everything. Keys and values follow
the label patterns of the manifests (model/kinds.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from reconciler.model.errors import ReconError
from reconciler.model.patterns import LABEL_KEY_PATTERN, LABEL_VALUE_PATTERN

Operator = Literal["=", "!=", "in", "notin", "exists", "!exists"]

_KEY = re.compile(LABEL_KEY_PATTERN)
_VALUE = re.compile(LABEL_VALUE_PATTERN)
_WORD = re.compile(r"[A-Za-z0-9._/-]*")


class SelectorError(ReconError):
    """A selector that does not parse; the message says where."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.operator == "exists":
            return value is not None
        if self.operator == "!exists":
            return value is None
        if self.operator in ("=", "in"):
            return value is not None and value in self.values
        return value is None or value not in self.values  # != and notin


@dataclass(frozen=True, slots=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()
    text: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return self.text


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> SelectorError:
        return SelectorError(
            f"label selector {self.text!r}: {what} at column {self.pos + 1}",
            "write key=value, key!=value, key in (a,b), key notin (a,b), key or !key, "
            "separated by commas",
        )

    def space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def take(self, token: str) -> bool:
        if self.peek(token):
            self.pos += len(token)
            return True
        return False

    def word(self) -> str:
        match = _WORD.match(self.text, self.pos)
        assert match is not None  # the pattern matches the empty string
        self.pos = match.end()
        return match.group()

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def key(self) -> str:
        self.space()
        start = self.pos
        key = self.word()
        if not key:
            raise self.error("expected a label key")
        if not _KEY.match(key):
            self.pos = start
            raise self.error(f"{key!r} is not a label key")
        return key

    def value(self) -> str:
        self.space()
        start = self.pos
        value = self.word()
        if not _VALUE.match(value) or "/" in value:
            self.pos = start
            raise self.error(f"{value!r} is not a label value")
        return value

    def values(self) -> tuple[str, ...]:
        self.space()
        if not self.take("("):
            raise self.error("expected '(' to open the list of values")
        out = [self.value()]
        self.space()
        while self.take(","):
            out.append(self.value())
            self.space()
        if not self.take(")"):
            raise self.error("expected ',' or ')' in the list of values")
        return tuple(out)

    def requirement(self) -> Requirement:
        self.space()
        if self.take("!"):
            return Requirement(self.key(), "!exists")
        key = self.key()
        self.space()
        if self.at_end() or self.peek(","):
            return Requirement(key, "exists")
        if self.take("!="):
            return Requirement(key, "!=", (self.value(),))
        if self.take("==") or self.take("="):
            return Requirement(key, "=", (self.value(),))
        for word in ("notin", "in"):
            after = self.pos + len(word)
            if self.peek(word) and (after == len(self.text) or self.text[after] in " ("):
                self.pos = after
                return Requirement(key, word, self.values())
        raise self.error("expected =, ==, !=, in, notin, ',' or the end")


def parse_selector(text: str) -> Selector:
    """The selector `text` says; raises SelectorError naming the column of a mistake."""
    scanner = _Scanner(text)
    scanner.space()
    if scanner.at_end():
        return Selector((), text)
    requirements = [scanner.requirement()]
    scanner.space()
    while scanner.take(","):
        requirements.append(scanner.requirement())
        scanner.space()
    if not scanner.at_end():
        raise scanner.error("expected ',' or the end")
    return Selector(tuple(requirements), text)
