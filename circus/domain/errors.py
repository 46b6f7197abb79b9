"""The errors Circus raises on purpose, under one root."""

from __future__ import annotations


class CircusError(Exception):
    """Root of the errors Circus raises itself (as opposed to bugs)."""


class StartupError(CircusError):
    """A role cannot start: the message names the cause and the fix, on one line."""
