"""Typed errors: each carries one sentence that says what went wrong, where, and what to do."""
from __future__ import annotations

from pathlib import Path


class ChromosomeNetError(Exception):
    """Base class; the CLI prints ``str(err)`` as one line on stderr and exits non-zero."""


class BadInputError(ChromosomeNetError):
    """A user-supplied file or folder cannot be used."""

    def __init__(self, path: str | Path, problem: str, fix: str):
        self.path, self.problem, self.fix = str(path), problem, fix
        super().__init__(f"{path}: {problem}; {fix}")


class BadFilesError(ChromosomeNetError):
    """Several bad files at once: one line each (what, which file), then what to do; nothing was written."""

    def __init__(self, errors: list[BadInputError], fix: str):
        self.errors = errors
        super().__init__(f"{len(errors)} bad files, nothing was written: {fix}:\n"
                         + "\n".join(f"{e.path}: {e.problem}" for e in errors))


class DatasetError(ChromosomeNetError):
    """A dataset as a whole is unusable (e.g. too few groups to split)."""


class NoCallError(ChromosomeNetError):
    """The outputs were written, but no karyotype could be called (a count no cell has)."""
