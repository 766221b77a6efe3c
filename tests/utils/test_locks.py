"""One writer per output folder (``utils.locks``), across processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

import train_multi_tft
from tests.conftest import make_bars
from utils.errors import DataError
from utils.locks import lock_path, output_lock

REPO = Path(train_multi_tft.__file__).resolve().parent


def test_second_writer_waits_or_stops(tmp_path):
    folder = tmp_path / "out"
    other = FileLock(str(lock_path(folder)))  # another open file: another writer, as far as flock is concerned
    other.acquire()
    with pytest.raises(DataError, match=r"out is being written by another build .*--no-wait"):
        with output_lock(folder, wait=False, what="build"):
            pass
    other.release()
    with output_lock(folder, wait=False) as path:
        assert path == tmp_path / ".out.lock"


def test_lock_removes_leftovers_of_killed_runs(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / ".x.parquet.abc.tmp").write_text("half")
    (folder / "keep.csv").write_text("ok")
    with output_lock(folder):
        assert sorted(p.name for p in folder.iterdir()) == ["keep.csv"]


def _build_cmd(cfg: Path, *extra: str) -> list[str]:
    return [sys.executable, str(REPO / "src" / "build_full_merged.py"), "--config", str(cfg), "--periods", "1h",
            *extra]


def test_two_builds_on_one_data_root_never_both_write(tmp_path):
    """A build holding the lock: a second one with --no-wait exits 2 and writes nothing; without it, it waits."""
    raw = tmp_path / "raw"
    raw.mkdir()
    make_bars(300)[["timestamp", "open", "high", "low", "close", "volume"]].to_csv(raw / "AAA.csv", index=False)
    cfg = tmp_path / "build.yaml"
    cfg.write_text(yaml.safe_dump({"raw_dir": str(raw), "data_root": str(tmp_path / "data"), "min_bars": 20}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = FileLock(str(lock_path(tmp_path / "data" / "merged")))
    holder.acquire()  # a first build, still writing
    stopped = subprocess.run(_build_cmd(cfg, "--no-wait"), env=env, capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 2 and "is being written by another build" in stopped.stderr
    assert not (tmp_path / "data" / "merged" / "full_merged.csv").exists()
    waiting = subprocess.Popen(_build_cmd(cfg), env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(8)
    assert waiting.poll() is None  # still waiting for the lock
    holder.release()
    err = waiting.communicate(timeout=120)[1]
    assert waiting.returncode == 0 and "waiting for it to finish" in err
    assert (tmp_path / "data" / "merged" / "full_merged.csv").is_file()
