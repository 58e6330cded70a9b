"""Atomic file writes: write a temporary file in the target's directory, then rename over it,
so a crash or Ctrl-C never leaves a half-written file under the final name. A set of files
(`publish`) appears whole or not at all, under a lock on its directory."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from collections.abc import Callable, Iterator


def _write_temp(path: Path, write: Callable[[object], None], mode: str) -> Path:
    """A fsynced temporary file beside `path` holding what `write` wrote; removed on failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp)


def atomic_write(path: str | Path, write: Callable[[object], None], mode: str = "wb") -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path, write, mode)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink()
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text), mode="w")


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextlib.contextmanager
def locked_dir(directory: Path) -> Iterator[None]:
    """An exclusive lock on a directory (flock on its descriptor: no lock file); waits for it."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def publish(directory: str | Path, files: dict[str, bytes], stale: tuple[str, ...] = ()) -> list[Path]:
    """Writes `files` (name -> content) into `directory` as one set: every file goes to a
    temporary name first, and only when all are written are they renamed into place (in the
    given order) and the `stale` names this set lacks removed, all under `locked_dir`, so two
    writers never mix their files. On any failure (a full or read-only disk) the temporaries go,
    and so do the directories this call created; an earlier set stays untouched. Raises OSError."""
    directory = Path(directory)
    created = [p for p in (directory, *directory.parents) if not p.exists()]
    written: list[Path] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with locked_dir(directory):
            for name, data in files.items():
                written.append(_write_temp(directory / name, lambda f, d=data: f.write(d), "wb"))
            for tmp, name in zip(written, files):
                os.replace(tmp, directory / name)
            for name in stale:
                if name not in files:
                    (directory / name).unlink(missing_ok=True)
    except BaseException:
        for tmp in written:
            tmp.unlink(missing_ok=True)
        for d in created:  # deepest first; only if still empty (a concurrent writer may be using it)
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    return [directory / name for name in files]
