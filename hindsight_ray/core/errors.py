"""The one exception type for user mistakes: the CLI prints it as a one-line ``error: ...``."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the config, the data or the resources, caught before any trial starts."""
