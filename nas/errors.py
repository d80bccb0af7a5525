"""Errors that mean "the user asked for something wrong": the CLI prints them as one line, exit 2."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """Bad user input (a field, a file, a path, a name): the message names what is wrong."""
