"""User-facing errors and endings: the CLIs print one line and exit non-zero, no traceback.

SIGINT, SIGTERM (what `timeout`, systemd, Slurm and `docker stop` send) and SIGHUP (a closed
terminal) all end a command the same way: the handler raises `Stopped` in the main thread, so
every `finally` runs (the Lava runner kills its worker's process group; atomic writes remove
their temporary files), and the command exits with 128 + the signal number.
"""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class UserError(Exception):
    """Bad input from the user (file, option, data); the message says what is wrong and how to fix it."""


class Stopped(KeyboardInterrupt):
    """The command was stopped by a signal. A KeyboardInterrupt, so code that cleans up after
    Ctrl-C cleans up after SIGTERM and SIGHUP too."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, frame) -> None:
    raise Stopped(signum)


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Runs a CLI main; a UserError becomes one line on stderr and exit 2, a stop signal one
    line and exit 128 + its number."""
    main_thread = threading.current_thread() is threading.main_thread()  # only it may set handlers
    previous = {s: signal.signal(s, _raise_stopped) for s in STOP_SIGNALS} if main_thread else {}
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        signum = e.signum if isinstance(e, Stopped) else signal.SIGINT
        print(f"stopped by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
