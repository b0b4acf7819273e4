"""Default factories for the models' list and dict fields.

Python functions rather than the builtins `list` and `dict`: pydantic inspects the signature
of every default_factory when it builds a model, and a builtin's signature is parsed from its
text (inspect and tokenize), which cost start-up some 10-20 ms for the kinds alone.
"""

from __future__ import annotations

from typing import Any


def empty_list() -> list[Any]:
    return []


def empty_dict() -> dict[Any, Any]:
    return {}
