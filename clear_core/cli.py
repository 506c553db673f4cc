"""The `clear-studio` command. Subcommands live in clear_core/commands/, one module per area.

This is the only place (with app.py) that reads the environment: CLEAR_STUDIO_WORKSPACE names the default workspace.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import ClearError
from .names import DEFAULT_WORKSPACE

COMMAND_MODULES = ("data", "scoring", "curation", "serve")


def default_workspace() -> str:
    return os.environ.get("CLEAR_STUDIO_WORKSPACE") or DEFAULT_WORKSPACE


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error shape: one line, exit status 2 (argparse prints the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="clear-studio", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"clear-studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = []
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"clear_core.commands.{name}")
        except ModuleNotFoundError as exc:  # an area not built yet must not break the others
            if exc.name != f"clear_core.commands.{name}":
                raise
            continue
        module.register(sub, default_workspace())
        modules.append(module)
    for module in modules:  # flags an area adds to another's subcommands (scoring's --workers on `resume`)
        if hasattr(module, "extend"):
            module.extend(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a bad argument (already printed): its exit status
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ClearError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: committed work is kept; `clear-studio resume RUN_ID` goes on from there", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
