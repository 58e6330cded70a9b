"""How a deploy ends when it is stopped: SIGINT, SIGTERM and SIGHUP to the deploy, and SIGKILL
of it (the OOM killer, a crashed notebook), each during a Lava run, leave no process of the run
within 5 s and no report. The deploy runs in its own session; whatever happens, the test kills
both process groups it knows of at the end."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, STAT_PGID, STAT_PPID, processes_where


def lava_worker(parent: int) -> int | None:
    """The Lava worker among `parent`'s children (others may come and go: the test must not take one)."""
    for pid in processes_where(STAT_PPID, parent):
        try:
            if b"ddla_neuro.deploy.lava_worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            pass
    return None


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def kill_groups(*pgids: int) -> None:
    for pgid in pgids:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@pytest.mark.slow
@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129),
                                           (signal.SIGKILL, -signal.SIGKILL)])
def test_a_stopped_deploy_leaves_no_process_and_no_report(tmp_path, signum, status):
    out = tmp_path / "report"
    deploy = subprocess.Popen([sys.executable, "-m", "ddla_neuro.deploy", "--profile", "loihi2", "--samples", "300",
                               "--out", str(out)], cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    worker = None
    try:
        # the Lava worker leads its own process group; wait until Lava has forked its processes
        assert wait_for(lambda: lava_worker(deploy.pid), 120), "no Lava worker started"
        worker = lava_worker(deploy.pid)
        assert wait_for(lambda: len(processes_where(STAT_PGID, worker)) > 3, 120), "Lava did not start its processes"
        time.sleep(1.0)
        os.kill(deploy.pid, signum)
        assert deploy.wait(timeout=30) == status
        alive = lambda: processes_where(STAT_PGID, worker)  # noqa: E731
        assert wait_for(lambda: not alive(), 5.0), f"left alive: {alive()}"
        assert not out.exists()
        if signum != signal.SIGKILL:  # after the Lava estimate, one line naming the signal, no traceback
            err = deploy.stderr.read().strip().splitlines()
            assert err[0].startswith("Lava: about ") and err[1:] == [f"stopped by {signal.Signals(signum).name}"]
    finally:
        kill_groups(deploy.pid, *([worker] if worker else []))
        deploy.stderr.close()
