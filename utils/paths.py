"""Data-root relocation: one dataset per data root (``--out`` of the build, ``--data-root`` of later stages)."""

from __future__ import annotations

from pathlib import Path

DEFAULT_ROOT = "data"


def rebase(path: str | Path, data_root: str | Path | None) -> Path:
    """``path`` moved under ``data_root`` when it is a relative path under the default ``data/`` folder.

    ``rebase('data/merged/full_merged.csv', '/srv/fx')`` -> ``/srv/fx/merged/full_merged.csv``; absolute
    paths, paths outside ``data/`` and ``data_root=None`` are returned unchanged.
    """
    p = Path(path)
    if data_root is None or p.is_absolute() or not p.parts or p.parts[0] != DEFAULT_ROOT:
        return p
    return Path(data_root).joinpath(*p.parts[1:])
