"""Writers of Binance public-data dump files (one CSV member per zip, monthly files), for the synthetic market."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd

from utils.io import atomic_path


def write_zip(frame: pd.DataFrame, path: Path) -> None:
    """One CSV member per zip, as Binance publishes; fixed member date keeps bytes deterministic."""
    buf = io.StringIO()
    frame.to_csv(buf, index=False, float_format="%.10g")
    info = zipfile.ZipInfo(path.with_suffix(".csv").name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        zf.writestr(info, buf.getvalue())


def write_monthly(frame: pd.DataFrame, time_col: str, folder: Path, stem: str) -> int:
    """``frame`` as monthly zips ``<stem>-YYYY-MM.zip`` in ``folder`` (Binance's monthly dumps); returns the count."""
    t = frame[time_col]
    ts = pd.to_datetime(t, utc=True) if t.dtype == object or pd.api.types.is_string_dtype(t) else \
        pd.to_datetime(t, unit="ms", utc=True)
    months = ts.dt.strftime("%Y-%m")
    written = 0
    for month, part in frame.groupby(months.to_numpy(), sort=True):
        write_zip(part, folder / f"{stem}-{month}.zip")
        written += 1
    return written
