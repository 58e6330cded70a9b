"""Where a report lands: a set of files that appears whole or not at all (fileio.publish), one
writer at a time per directory, and one clear line when the disk is full or read-only."""
from __future__ import annotations

import errno
import json
import subprocess
import sys
import threading

import pytest

from conftest import ROOT
from ddla_neuro import fileio
from ddla_neuro.deploy.cli import main
from ddla_neuro.errors import run_cli

FAST = ["--backend", "fast", "--samples", "40"]


def test_a_set_appears_whole_or_not_at_all(tmp_path, monkeypatch):
    out = tmp_path / "a" / "b"
    fileio.publish(out, {"x.txt": b"old x", "y.txt": b"old y", "z.png": b"old z"})
    real, calls = fileio._write_temp, []

    def full_disk_on_the_second(path, write, mode):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, write, mode)

    monkeypatch.setattr(fileio, "_write_temp", full_disk_on_the_second)
    with pytest.raises(OSError, match="No space"):
        fileio.publish(out, {"x.txt": b"new x", "y.txt": b"new y"}, stale=("z.png",))
    assert sorted(p.name for p in out.iterdir()) == ["x.txt", "y.txt", "z.png"]  # no temporaries left
    assert [(out / n).read_bytes() for n in ("x.txt", "y.txt", "z.png")] == [b"old x", b"old y", b"old z"]
    calls.clear()
    fresh = tmp_path / "new" / "dir"
    with pytest.raises(OSError):
        fileio.publish(fresh, {"x.txt": b"1", "y.txt": b"2"})
    assert not (tmp_path / "new").exists()  # the directories it created are gone too


def test_a_second_writer_waits_for_the_first(tmp_path):
    fileio.publish(tmp_path, {"r.json": b"first"})
    done = threading.Event()
    with fileio.locked_dir(tmp_path):
        writer = threading.Thread(target=lambda: (fileio.publish(tmp_path, {"r.json": b"second"}), done.set()))
        writer.start()
        assert not done.wait(0.5)
        assert (tmp_path / "r.json").read_bytes() == b"first"
    writer.join(10)
    assert done.is_set() and (tmp_path / "r.json").read_bytes() == b"second"


@pytest.mark.slow
def test_two_deploys_into_one_directory_leave_one_runs_files(tmp_path):
    """Two deploys (different profiles) started at once into one --out: both finish, and every
    file there is the one a run of that profile writes alone."""
    alone = {}
    for profile in ("loihi", "loihi2"):
        assert run_cli(main, ["--profile", profile, *FAST, "--out", str(tmp_path / profile)]) == 0
        alone[profile] = {p.name: p.read_bytes() for p in (tmp_path / profile).iterdir()}
    shared = tmp_path / "shared"
    runs = [subprocess.Popen([sys.executable, "-m", "ddla_neuro.deploy", "--profile", profile, *FAST, "--out",
                              str(shared)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for profile in ("loihi", "loihi2")]
    assert [r.wait(300) for r in runs] == [0, 0]
    files = {p.name: p.read_bytes() for p in shared.iterdir()}
    winner = json.loads(files["report.json"])["profile"]["name"]
    assert files == alone[winner]


def _mount_tmpfs(path, options: str) -> None:
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")


@pytest.fixture
def tmpfs(tmp_path):
    mounted = []

    def mount(name: str, options: str):
        path = tmp_path / name
        _mount_tmpfs(path, options)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], capture_output=True)


@pytest.mark.parametrize("options,cause", [("size=64k", "No space left on device"), ("ro", "Read-only file system")])
def test_a_full_or_read_only_disk_is_one_line_and_leaves_nothing(tmpfs, capsys, options, cause):
    disk = tmpfs("disk", options)
    out = disk / "report"
    assert run_cli(main, ["--profile", "loihi2", *FAST, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot write the report to {out}") and cause in err and "\n" not in err, err
    assert list(disk.iterdir()) == []


def test_a_write_that_fails_late_leaves_nothing(tmp_path, monkeypatch, capsys):
    """The disk fills up after the check before the run: the same one line, no files."""
    def no_space(path, write, mode):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio, "_write_temp", no_space)
    out = tmp_path / "report"
    assert run_cli(main, ["--profile", "loihi2", *FAST, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: cannot write the report to {out}: No space left on device; free space there or pick "
                   f"another --out")
    assert not out.exists()
