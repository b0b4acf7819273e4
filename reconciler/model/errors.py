"""recon's one root exception, split into temporary (retry) and permanent (report) errors."""

from __future__ import annotations


class ReconError(Exception):
    """Root of every error recon raises on purpose."""

    hint: str | None = None
    temporary: bool = False

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class TemporaryError(ReconError):
    """Worth retrying with backoff: a host that is not answering, a lock held by another run."""

    temporary = True
