"""User-facing errors: the CLIs print their message as one line and exit non-zero, no traceback."""
from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """Bad input from the user (file, option, data); the message says what is wrong and how to fix it."""


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Runs a CLI main; a UserError or Ctrl-C becomes one line on stderr and a non-zero exit."""
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
