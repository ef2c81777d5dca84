"""The ``esd-gym`` command-line entry point: argument parsing, logging set-up and one-line error reporting."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from rich.console import Console
from rich.logging import RichHandler

from esd_gym.errors import EsdGymError
from experiments.commands import COMMAND_MODULES

# The single console of the CLI: results go to stdout, logs and errors to stderr.
console = Console(highlight=False, soft_wrap=True)
error_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """Raised by SIGTERM (from kill, timeout or a job scheduler) so that cleanup runs as it does for Ctrl-C.

    Without it SIGTERM ends the process at once, leaving the temporary files of a half-written output behind.
    """


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every subcommand registered (their modules are imported here)."""
    parser = argparse.ArgumentParser(
        prog="esd-gym",
        description="Simulate, learn and compare sample dispatch for DLRM training on edge workers.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES.values():
        importlib.import_module(module_name).register(subparsers)
    return parser


def configure_logging(verbosity: int) -> None:
    if verbosity <= 0:
        level = logging.WARNING
    elif verbosity == 1:
        level = logging.INFO
    else:
        level = logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=error_console, show_path=False, show_time=False)],
        force=True,
    )
    # The project's own progress messages are worth showing by default.
    for name in ("esd_gym", "agents", "experiments"):
        logging.getLogger(name).setLevel(min(level, logging.INFO))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; bad input ends with a one-line message on stderr and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    # Python may install signal handlers in the main thread only.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        result = args.handler(args)
    except EsdGymError as error:
        error_console.print(f"esd-gym {args.command}: error: {error}", markup=False)
        return EXIT_BAD_INPUT
    except Terminated:
        error_console.print(f"esd-gym {args.command}: terminated", markup=False)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        error_console.print(f"esd-gym {args.command}: interrupted", markup=False)
        return EXIT_INTERRUPTED
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
