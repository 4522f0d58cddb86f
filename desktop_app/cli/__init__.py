"""The `quantdesk` command: the window by default, and a sub-command per core capability.

Every sub-command takes ``--json`` and then prints exactly one JSON object on stdout; logs and
messages go to stderr. Imports are deferred into each command so that ``--version`` and
``hardware`` never pay for Qt, llama.cpp or evaluate.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from desktop_app import __version__
from desktop_app.cli import chat, compare, convert, hub, local


def cmd_gui(args: argparse.Namespace) -> int:
    from desktop_app.ui.platform_check import platform_problem

    problem = platform_problem()  # before Qt, which would abort the process instead
    if problem:
        print(problem, file=sys.stderr)
        return 1
    try:
        from desktop_app.ui.app import run_gui
    except ImportError as exc:
        print(
            f"The window needs PySide6, which failed to import ({exc}). "
            f"Install it with: {sys.executable} -m pip install PySide6-Essentials",
            file=sys.stderr,
        )
        return 1
    return run_gui(screenshots_dir=getattr(args, "screenshots", None))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quantdesk",
        description="Pick a quantized LLM that fits this machine, chat with it, compare quants. "
        "With no command, opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"quantdesk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("gui", help="open the window (the default)")
    p.add_argument("--screenshots", metavar="DIR", help="render every page to DIR/<page>.png and exit")
    p.set_defaults(func=cmd_gui)
    for commands in (local, chat, hub, compare, convert):
        commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from desktop_app.core.logs import setup_logging

    try:
        setup_logging(verbose=args.verbose)
    except OSError as exc:
        print(f"warning: cannot write the log file ({exc})", file=sys.stderr)
    if args.command is None:
        return cmd_gui(args)
    if args.command not in ("gui",):
        _apply_thread_setting()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _apply_thread_setting() -> None:
    """The Settings page's thread count applies to the command line too."""
    from desktop_app.core.runtime import set_threads_override
    from desktop_app.core.settings import SettingsStore

    set_threads_override(SettingsStore().load().threads)


def gui_main() -> int:
    """Entry point of the GUI script (no console window on Windows)."""
    return main(["gui"])
