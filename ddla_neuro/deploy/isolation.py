"""Runs a command isolated from this process: in its own session, its output streamed, its
whole process group killed at the end whatever happens (success, a crash, a hang past the
timeout, Ctrl-C or SIGTERM), and, on the child's side, a watchdog that takes the group down
when the parent dies without cleaning up. The Lava worker (`lava_worker.py`) and the tests'
Lava and lava-dl anchors run this way. Nothing here imports Lava or torch.
"""
from __future__ import annotations

import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

from ..errors import STOP_SIGNALS, UserError

PR_SET_PDEATHSIG = 1  # linux/prctl.h


class IsolationError(UserError):
    """The isolated command timed out or failed; its processes are gone."""


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_isolated(cmd: list[str], timeout: float, on_line: Callable[[str], None] | None = None) -> str:
    """Runs `cmd` in a new session; streams its stdout lines to `on_line`; returns its stderr.
    Raises IsolationError on a timeout or a non-zero exit. The process group is always killed,
    also on a stop signal; if this process dies without cleaning up (SIGKILL, the OOM killer),
    the child sees its stdin reach EOF (`die_with_parent`)."""
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stdout, selectors.EVENT_READ)
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise IsolationError(f"the Lava run timed out after {timeout:.0f} s (a process hung or "
                                             f"failed); all its processes were killed; raise --timeout if the job "
                                             f"is just large")
                    if not sel.select(timeout=min(left, 1.0)):
                        continue
                    line = proc.stdout.readline()
                    if not line:
                        break
                    if on_line is not None:
                        on_line(line.strip())
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            raise IsolationError(f"the Lava run timed out after {timeout:.0f} s; all its processes were "
                                 f"killed") from None
        finally:
            with _signals_held():  # a second Ctrl-C or SIGTERM must not cut the clean-up short
                kill_group(proc.pid)
                proc.wait()
                proc.stdout.close()
                proc.stdin.close()
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0:
        raise IsolationError(f"the Lava run failed (exit {proc.returncode}): {_reason(stderr)}")
    return stderr


@contextmanager
def _signals_held():
    """Stop signals that arrive inside are delivered on leaving (and raise `Stopped` then)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _reason(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("{"):
            try:
                return json.loads(ln)["error"]
            except (ValueError, KeyError):
                pass
    return lines[-1][:300] if lines else "no message"


def die_with_parent() -> None:
    """In the worker: take its whole process group (every process Lava forks) down when the
    parent goes, however it goes. The parent holds the only write end of our stdin and never
    writes, so a read returns EOF once it exits, crashes or is SIGKILLed: a watchdog thread then
    kills the group. Linux's parent-death signal (not inherited by Lava's processes) does the
    same through a handler, in case the main thread gets there first."""
    def kill_all(*_) -> None:
        os.killpg(os.getpgrp(), signal.SIGKILL)

    def watch() -> None:
        while os.read(0, 4096):
            pass
        kill_all()

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
    signal.signal(signal.SIGHUP, kill_all)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGHUP)
