"""The strict loader's shortcut for plain scalars that start like a number: one with a
character no number, date or YAML 1.1 form can contain is a string at once (yaml_rules'
_NUMBER_CHARS), and gets the answer the full list of patterns gives."""

from __future__ import annotations

import random
import re
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

from reconciler.load import yaml_rules
from reconciler.load.yaml_rules import _NUMBER_CHARS, _number_or_problem, _resolve_number

PATTERNS = [
    value
    for value in vars(yaml_rules).values()
    if isinstance(value, re.Pattern) and value.pattern and value.flags & re.IGNORECASE == 0
]


def characters(parsed: object) -> set[str]:
    """Every character a parsed pattern can match."""
    found: set[str] = set()
    for op, arg in parsed:  # type: ignore[attr-defined]
        if op is sre_constants.LITERAL:
            found.add(chr(arg))
        elif op is sre_constants.IN:
            for kind, item in arg:
                if kind is sre_constants.LITERAL:
                    found.add(chr(item))
                elif kind is sre_constants.RANGE:
                    found |= {chr(c) for c in range(item[0], item[1] + 1)}
                else:
                    raise AssertionError(f"unexpected set item {kind}")
        elif op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT):
            found |= characters(arg[2])
        elif op is sre_constants.SUBPATTERN:
            found |= characters(arg[3])
        elif op is sre_constants.BRANCH:
            for branch in arg[1]:
                found |= characters(branch)
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            continue
        elif op is not sre_constants.AT:
            raise AssertionError(f"unexpected regex element {op}")
    return found


def test_every_character_the_number_patterns_match_is_in_the_shortcut_set() -> None:
    assert len(PATTERNS) >= 10
    for pattern in PATTERNS:
        if pattern.pattern.startswith(("[-+]?", "0", "[0-9]", "[-+]")):
            assert characters(sre_parse.parse(pattern.pattern)) <= _NUMBER_CHARS, pattern


def test_the_shortcut_gives_the_full_answer() -> None:
    rng = random.Random(7)
    alphabet = "0123456789+-._:eExobIiNnfaT Zt/%GMKi\t"
    samples = ["512Mi", "10Gi", "10.0.0.1/24", "50%", "0x1F", "1e5", "12:30", "2024-01-02"]
    samples += [
        "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12))) for _ in range(20000)
    ]
    for value in samples:
        if value[0] in "0123456789+-.":
            assert _resolve_number(value) == _number_or_problem(value), value
