"""Atomic file writers.

Every output is written to a temporary file in the destination folder and then renamed over
the target, so a crash or a bad input never leaves a half-written file or destroys an
earlier good one.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    Parameters
    ----------
    path : path-like
        Final destination. Parent folders are created.

    Yields
    ------
    pathlib.Path
        Temporary file to write to. It is removed if the body raises.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give outputs the usual umask-derived mode instead.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _write_with(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(df, preserve_index=False)


def write_csv(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` (without its index) as CSV using Arrow's multi-threaded writer.

    Timestamps are written in ISO-8601 with a ``Z`` suffix; floats keep full precision.
    """
    table = _to_arrow(df)
    return _write_with(path, lambda tmp: pacsv.write_csv(table, tmp))


def write_csv_table(table: pa.Table, path: str | os.PathLike[str]) -> Path:
    """Write an Arrow table as CSV (same format as :func:`write_csv`)."""
    return _write_with(path, lambda tmp: pacsv.write_csv(table, tmp))


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``df`` (without its index) as a zstd-compressed parquet file."""
    table = _to_arrow(df)
    return _write_with(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def write_pickle(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Pickle ``obj`` with the highest protocol."""

    def _dump(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)

    return _write_with(path, _dump)


def write_text(text: str, path: str | os.PathLike[str]) -> Path:
    """Write a UTF-8 text file."""
    return _write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` as indented, key-sorted JSON."""
    return write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", path)


def read_csv_fast(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a CSV with Arrow's multi-threaded reader into pandas.

    A column that is empty in this file (say a long-window feature on a short history) is read as
    Arrow's null type; it is cast to float64 so concatenating files keeps numeric columns numeric.
    """
    table = pacsv.read_csv(path)
    for i, fld in enumerate(table.schema):
        if pa.types.is_null(fld.type):
            table = table.set_column(i, fld.name, table.column(i).cast(pa.float64()))
    return table.to_pandas()


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging folder that replaces ``path`` as a whole on success.

    On failure the staging folder is removed and an existing ``path`` is left untouched. The
    swap is two renames (old out of the way, new in), then the old folder is deleted.
    """
    import shutil

    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.staging-", dir=dest.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes 0700 folders
    try:
        yield staging
        old = None
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.rmdir(old)
            os.replace(dest, old)
        os.replace(staging, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def file_fingerprint(path: str | os.PathLike[str], length: int = 12) -> str:
    """First ``length`` hex digits of the SHA-256 of a file's bytes (a data version tag)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def read_frame(path: str | os.PathLike[str], missing: str) -> pd.DataFrame:
    """Read a table by suffix (parquet, pkl, else CSV with a UTC ``timestamp`` column).

    Raises
    ------
    DataError
        When the file does not exist: ``missing`` formatted with ``path``.
    """
    from utils.errors import DataError

    p = Path(path)
    if not p.is_file():
        raise DataError(missing.format(path=p))
    if p.suffix == ".parquet":
        return pd.read_parquet(p)
    if p.suffix == ".pkl":
        return pd.read_pickle(p)
    frame = pd.read_csv(p)
    if "timestamp" in frame:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


STALE_AFTER_S = 3600.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale(folder: str | os.PathLike[str], max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove leftovers of killed runs in ``folder``: staging entries whose process is gone and temp files.

    Staging entries (``<name>.staging-<tag>-<pid>`` and :func:`atomic_dir`'s ``.<name>.staging-*``) are removed
    when their process no longer runs, or when older than ``max_age_s`` if the name carries no pid;
    ``.<name>.*.tmp`` files of :func:`atomic_path` when untouched for ``max_age_s``.

    Returns
    -------
    list of Path
        What was removed.
    """
    import shutil
    import time

    root = Path(folder)
    if not root.is_dir():
        return []
    removed = []
    now = time.time()
    for entry in root.iterdir():
        name = entry.name
        if ".staging-" not in name and ".old-" not in name and not (name.startswith(".") and name.endswith(".tmp")):
            continue
        pid_text = name.rsplit("-", 1)[-1]
        try:
            age = now - entry.lstat().st_mtime
        except FileNotFoundError:
            continue
        stale = (not _pid_alive(int(pid_text))) if pid_text.isdigit() and ".staging-" in name and \
            not name.startswith(".") else age > max_age_s
        if not stale:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


class Generation:
    """The outputs of one run, staged beside their destinations and swapped in together.

    ``stage(dest)`` gives the path to write instead of ``dest``; :meth:`commit` moves every staged
    output onto its destination (files by an atomic rename, folders by two renames), :meth:`abort`
    removes them. Until ``commit``, the previous generation is untouched, so a failed or killed run
    never leaves a mix of old and new outputs; a killed run's staged leftovers carry its pid and are
    removed by :func:`remove_stale` on the next run.
    """

    def __init__(self, tag: str) -> None:
        self.suffix = f".staging-{tag}-{os.getpid()}"
        self.staged: list[tuple[Path, Path]] = []
        self.doomed: list[Path] = []

    def drop(self, dest: str | os.PathLike[str]) -> None:
        """Remove ``dest`` (a file or folder of the previous generation) at :meth:`commit`, not before."""
        self.doomed.append(Path(dest))

    def stage(self, dest: str | os.PathLike[str]) -> Path:
        """Staging path for ``dest`` (its parent folder is created)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staged = dest.parent / f"{dest.name}{self.suffix}"
        self.staged.append((staged, dest))
        return staged

    def commit(self) -> None:
        """Move every staged output onto its destination."""
        import shutil

        for staged, dest in self.staged:
            if not staged.exists():
                continue
            if staged.is_dir():
                old = dest.parent / f"{dest.name}.old-{os.getpid()}"
                if dest.exists():
                    os.replace(dest, old)
                os.replace(staged, dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staged, dest)
        self.staged = []
        for dest in self.doomed:
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest, ignore_errors=True)
            else:
                dest.unlink(missing_ok=True)
        self.doomed = []

    def abort(self) -> None:
        """Remove whatever was staged (the destinations are untouched)."""
        import shutil

        for staged, _ in self.staged:
            if staged.is_dir():
                shutil.rmtree(staged, ignore_errors=True)
            else:
                staged.unlink(missing_ok=True)
        self.staged = []
        self.doomed = []
