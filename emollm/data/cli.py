"""Subcommands of `emollm` for this package (see :mod:`emollm.cli`)."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Adds this package's subcommands to the `emollm` parser (none yet)."""
