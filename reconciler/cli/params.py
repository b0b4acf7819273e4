"""Option values checked where they are parsed: a bad flag is a usage error (exit 2) that names
the flag, never a traceback later or a value quietly taken (a negative timeout, a loop that
spins with `--resync 0`, a set name that no stamp can carry)."""

from __future__ import annotations

import math
import re
from typing import Any

import click

# The help of every command's -f option.
FILES_HELP = "Manifest file or directory (read recursively); '-' reads standard input. Repeatable."


class Seconds(click.ParamType[float]):
    """A finite number of seconds; `positive` refuses 0 as well."""

    name = "seconds"

    def __init__(self, *, positive: bool = False) -> None:
        self.positive = positive

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or seconds < 0 or (self.positive and seconds == 0):
            least = "more than 0" if self.positive else "0 or more"
            self.fail(f"{value!r}: give a finite number of seconds, {least}", param, ctx)
        return seconds


class SetName(click.ParamType[str]):
    """A set name: what a stamp records and --prune is scoped by, so a name like a resource's."""

    name = "name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        # Imported here: the manifest model is not needed for `recon --help`.
        from reconciler.model.patterns import NAME_PATTERN

        text = str(value)
        if not re.fullmatch(NAME_PATTERN, text):
            self.fail(
                f"{text!r} is not a set name (lower-case letters, digits and '-', "
                "starting with a letter, at most 63)",
                param,
                ctx,
            )
        return text


class HostPort(click.ParamType[str]):
    name = "host:port"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            self.fail(f"{text!r}: give HOST:PORT with a port from 1 to 65535", param, ctx)
        return f"{host}:{int(port)}"


SECONDS = Seconds()
POSITIVE_SECONDS = Seconds(positive=True)
SET_NAME = SetName()
HOST_PORT = HostPort()
