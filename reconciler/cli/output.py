"""Rendering helpers shared by the verbs: diagnostics, JSON, colour that respects NO_COLOR."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from reconciler.model.diagnostics import Diagnostic


def use_colour(stream: Any) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def style(text: str, colour: str, *, err: bool = False, bold: bool = False) -> str:
    stream = sys.stderr if err else sys.stdout
    return click.style(text, fg=colour, bold=bold) if use_colour(stream) else text


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def print_diagnostics(diags: Sequence[Diagnostic]) -> None:
    for diag in diags:
        text = diag.render()
        head, _, rest = text.partition("\n")
        click.echo(style("error", "red", err=True, bold=True) + head[len("error") :], err=True)
        if rest:
            click.echo(style(rest, "cyan", err=True), err=True)


def fail(message: str, hint: str | None = None, code: int = 2) -> NoReturn:
    click.echo(style("error", "red", err=True, bold=True) + f": {message}", err=True)
    if hint:
        click.echo(style(f"  hint: {hint}", "cyan", err=True), err=True)
    raise SystemExit(code)
