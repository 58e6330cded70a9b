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

from conftest import ROOT


def _stat(pid: str) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgid, ...); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def live(where: int, field: int) -> list[int]:
    """Live (not zombie) processes whose ppid (field 1) or pgid (field 2) is `where`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        st = _stat(pid)
        if st and st[0] != "Z" and int(st[field]) == where:
            found.append(int(pid))
    return found


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
        assert wait_for(lambda: live(deploy.pid, 1), 120), "no Lava worker started"
        worker = live(deploy.pid, 1)[0]
        assert wait_for(lambda: len(live(worker, 2)) > 3, 120), "Lava did not start its processes"
        time.sleep(1.0)
        os.kill(deploy.pid, signum)
        assert deploy.wait(timeout=30) == status
        assert wait_for(lambda: not live(worker, 2), 5.0), f"left alive: {live(worker, 2)}"
        assert not out.exists()
        if signum != signal.SIGKILL:  # one line naming the signal, no traceback
            assert deploy.stderr.read().strip() == f"stopped by {signal.Signals(signum).name}"
    finally:
        kill_groups(deploy.pid, *([worker] if worker else []))
        deploy.stderr.close()
