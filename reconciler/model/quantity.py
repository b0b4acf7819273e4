"""Quantities (`512Mi`, `4Gi`) and percentages (`"50%"`), Kubernetes style."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_UNITS: dict[str, int] = {
    "": 1,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
}
QUANTITY_PATTERN = r"^[0-9]{1,15}(\.[0-9]{1,9})?(Ki|Mi|Gi|Ti|k|M|G|T)?$"
_QUANTITY_RE = re.compile(QUANTITY_PATTERN)
PERCENT_PATTERN = r"^(100|[1-9]?[0-9])%$"
_PERCENT_RE = re.compile(PERCENT_PATTERN)


def parse_quantity(value: object) -> int:
    """Bytes from a quantity string. Numbers are refused: `512` would silently mean bytes."""
    if not isinstance(value, str):
        raise ValueError("expected a quantity string such as '512Mi' or '4Gi'")
    if not _QUANTITY_RE.match(value):
        raise ValueError(
            "expected a quantity: digits and a unit (Ki, Mi, Gi, Ti, k, M, G, T), e.g. '512Mi'"
        )
    number = value.rstrip("KiMGTk")
    unit = value[len(number) :]
    try:
        amount = Decimal(number) * _UNITS[unit]
    except InvalidOperation as exc:  # pragma: no cover - the pattern rules this out
        raise ValueError("expected a quantity such as '512Mi'") from exc
    if amount != amount.to_integral_value():
        raise ValueError("quantity must be a whole number of bytes")
    return int(amount)


def format_quantity(nbytes: int) -> str:
    """The shortest exact binary form: 536870912 -> '512Mi'."""
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        size = _UNITS[unit]
        if nbytes and nbytes % size == 0:
            return f"{nbytes // size}{unit}"
    return str(nbytes)


def parse_percent(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError("expected a percentage string between '0%' and '100%', e.g. '50%'")
    if not _PERCENT_RE.match(value):
        raise ValueError("expected a percentage between '0%' and '100%', e.g. '50%'")
    return int(value[:-1])
