"""User-facing errors and warnings.

`ActokError` is raised for every mistake a user can fix (bad flag, missing file, wrong dataset). The CLI turns
it into one line on stderr and exit code 2; library callers can catch it like any exception.
"""

from __future__ import annotations


class ActokError(ValueError):
    """A problem with the user's input, explained in one line."""


class ActokWarning(UserWarning):
    """Something was off but a correct result was still produced (e.g. metadata disagreeing with files)."""
