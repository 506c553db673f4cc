"""Errors a user sees. The CLI prints ``str(error)`` on one line and exits with code 2."""

from __future__ import annotations


class ClearError(Exception):
    """Base class of every error CLEAR Studio reports to a user."""


class InputError(ClearError):
    """One problem in an input file, located by file, line (or row) and field."""

    def __init__(self, file: str, line: int | None, field: str | None, message: str):
        self.file, self.line, self.field, self.message = str(file), line, field, message
        super().__init__(self.describe())

    def describe(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" field '{self.field}':" if self.field else ""
        return f"{where}:{field} {self.message}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


class InputErrors(ClearError):
    """Several input problems at once; nothing was imported."""

    def __init__(self, errors: list[InputError]):
        self.errors = list(errors)
        first = self.errors[0].describe() if self.errors else "invalid input"
        if len(self.errors) > 1:
            more = f" (and {len(self.errors) - 1} more bad rows; --skip-bad-rows imports the good ones)"
        elif self.errors and self.errors[0].line is not None:
            more = " (--skip-bad-rows imports the good rows)"
        else:
            more = ""
        super().__init__(first + more)


class WorkspaceLockedError(ClearError):
    """The DuckDB workspace file is held by another process (the app, or another CLI command)."""


class UnknownNameError(ClearError, KeyError):
    """A name (signal, preset, dataset, run, format) that does not exist; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid: list[str] | tuple[str, ...]):
        self.kind, self.name, self.valid = kind, name, list(valid)
        shown = ", ".join(map(str, self.valid)) if self.valid else "(none)"
        super().__init__(f"unknown {kind} '{name}'; valid: {shown}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class Cancelled(ClearError):
    """A run was stopped by the user; what was committed stays, and `resume` goes on from there."""
