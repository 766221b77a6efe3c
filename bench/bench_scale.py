"""Time, CPU, peak memory and disk of the data stages as the universe grows (issue: a real universe).

Usage::

    python bench/bench_scale.py --symbols 10,40,160 --days 730 [--stages build,fusion] [--ref REV]
        [--ref-symbols 10,40] [--export none] [--work DIR] [--keep]

For each universe size a synthetic market (``python -m src.synthetic_market``, not timed) is generated once,
then each stage runs in its own subprocess: ``src/build_full_merged.py`` (periods 1h,4h,1d) and
``src/fuse_fundamentals.py`` (every shipped expert, base and rich) and, with ``train`` in ``--stages``, one
30-batch epoch of Alpha-Dir-TFT 1h/base on the fused universe (its peak against its window tensors). Per stage it
prints wall time, CPU time
(user + sys of that process, from ``os.wait4``), peak RSS, output disk and rows, then the least-squares
slopes per row (CPU us/row, KB of peak memory per row) and the ratio of the largest to the smallest peak.

``--ref REV`` runs the same stages from a git worktree of ``REV`` (say the previous commit) on the same raw
markets, in the same run, and prints the per-row CPU ratio reference / this tree (``--ref-symbols`` limits
the reference to the sizes it can hold: the old build needs ~5.5 KB of memory per row).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], tree: Path, cwd: Path | None = None) -> dict:
    """Run ``cmd`` (code from ``tree``) in its own process; wall and CPU seconds and peak RSS (GiB) of that process."""
    env = {**os.environ, "PYTHONPATH": str(tree), "TQDM_DISABLE": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd or tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    err = proc.stderr.read() if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_gib": usage.ru_maxrss / 2**20}


def _disk(paths: list[Path]) -> float:
    """GiB under ``paths`` (files and folders)."""
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_size
        elif p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    return total / 2**30


def _rows(data: Path) -> int:
    meta = data / "merged" / "full_merged" / "_dataset.json"
    if meta.is_file():
        return int(json.loads(meta.read_text())["rows"])
    import pyarrow.parquet as pq  # a reference build without the partitioned dataset

    return pq.ParquetFile(data / "merged" / "full_merged.parquet").metadata.num_rows


def _stages(tree: Path, raw: Path, data: Path, stages: list[str], export: str | None,
            fusion: tuple[str | None, str | None] = (None, None)) -> dict[str, dict]:
    py = sys.executable
    out = {}
    if "build" in stages:
        cmd = [py, "src/build_full_merged.py", "--raw-dir", str(raw), "--out", str(data), "--periods", "1h,4h,1d",
               "--synthetic"]
        if export and (tree / "src" / "build_stages.py").is_file():  # a reference tree may not know --export
            cmd += ["--export", export]
        outputs = [data / "merged", data / "pkl_merged", data / "crypto_targeted_and_indicated"]
        out["build"] = {**_run(cmd, tree), "rows": _rows(data), "disk_gib": _disk(outputs)}
    if "fusion" in stages:
        cmd = [py, "src/fuse_fundamentals.py", "--data-root", str(data), "--raw-dir", str(raw)]
        experts, fusion_export = fusion
        if experts:
            cmd += ["--experts", experts]
        if fusion_export and (tree / "src" / "fusion_stream.py").is_file():
            cmd += ["--export", fusion_export]
        out["fusion"] = {**_run(cmd, tree), "rows": out.get("build", {}).get("rows", _rows(data)),
                         "disk_gib": _disk([data / "merged" / "expert_group"])}
    if "train" in stages:
        out["train"] = _train(tree, data)
    return out


TRAIN_LEAF = "configs/experts/Alpha-Dir-TFT/1h/base/model_config.yaml"
TRAIN_SETS = ["training.max_epochs=1", "training.limit_train_batches=30", "training.limit_val_batches=5",
              "split.val_end=0.72",  # a short validation span: the run ends by predicting all of it (CPU)
              "trainer.accelerator=cpu", "trainer.devices=1"]
_TENSORS = """
import sys
from models.leaf_config import load_leaf
from models.leaf_config import data_root_override
from models.window_dataset import build_window_data
leaf = load_leaf(sys.argv[1], data_root_override(sys.argv[1], sys.argv[2]))
d = build_window_data(leaf)
arrays = [d.x, d.y, d.known, d.static, d.y_raw, d.time_idx, d.timestamp, d.close]
print(sum(a.nbytes if hasattr(a, "nbytes") else a.element_size() * a.nelement() for a in arrays), len(d.x))
"""


def _train(tree: Path, data: Path) -> dict:
    """One epoch of Alpha-Dir-TFT 1h/base (30 batches) on the fused universe: peak RSS against its window tensors."""
    config = str(tree / TRAIN_LEAF)
    run_dir = data / "train_run"
    run_dir.mkdir(exist_ok=True)
    cmd = [sys.executable, str(tree / "train_multi_tft.py"), "--config", config, "--data-root", str(data)]
    for item in TRAIN_SETS:
        cmd += ["--set", item]
    res = _run(cmd, tree, cwd=run_dir)
    probe = subprocess.run([sys.executable, "-c", _TENSORS, config, str(data)], cwd=tree, capture_output=True,
                           text=True, env={**os.environ, "PYTHONPATH": str(tree)}, check=True)
    nbytes, rows = (int(v) for v in probe.stdout.split()[-2:])
    return {**res, "rows": rows, "disk_gib": 0.0, "tensors_gib": nbytes / 2**30}


def _slope(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2:
        return float("nan")
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])


def _report(label: str, results: dict[int, dict[str, dict]]) -> dict[str, float]:
    slopes = {}
    stages = sorted({s for r in results.values() for s in r})
    for stage in stages:
        sizes = [n for n in sorted(results) if stage in results[n]]
        for n in sizes:
            r = results[n][stage]
            over = r["peak_gib"] - r.get("tensors_gib", 0.0)
            extra = (f"  window tensors {r['tensors_gib']:.2f} GiB (peak - tensors {over:.2f} GiB)"
                     if "tensors_gib" in r else f"  disk {r['disk_gib']:6.2f} GiB")
            print(f"{label:8s} {stage:7s} {n:5d} symbols {r['rows']:>11,} rows  wall {r['wall_s']:8.1f} s  "
                  f"cpu {r['cpu_s']:8.1f} s  ({1e6 * r['cpu_s'] / r['rows']:6.1f} us/row)  peak "
                  f"{r['peak_gib']:6.2f} GiB{extra}")
        rows = [results[n][stage]["rows"] for n in sizes]
        cpu = _slope(rows, [results[n][stage]["cpu_s"] for n in sizes]) * 1e6
        if len(sizes) == 1:  # one size: CPU per row there
            cpu = 1e6 * results[sizes[0]][stage]["cpu_s"] / rows[0]
        mem = _slope(rows, [results[n][stage]["peak_gib"] * 2**20 for n in sizes])
        disk = _slope(rows, [results[n][stage]["disk_gib"] * 2**20 for n in sizes])
        peaks = [results[n][stage]["peak_gib"] for n in sizes]
        slopes[stage] = cpu
        print(f"{label:8s} {stage:7s} slope: {cpu:.1f} us CPU/row, {mem:.3f} KB peak/row, {disk:.3f} KB disk/row; "
              f"peak largest/smallest {peaks[-1] / peaks[0]:.2f}x")
    return slopes


def _extrapolate(results: dict[int, dict[str, dict]], symbols: int, years: float, days: int) -> None:
    """Linear in rows from the two largest sizes measured."""
    sizes = sorted(results)
    if len(sizes) < 2:
        return
    for stage in sorted({s for r in results.values() for s in r}):
        have = [n for n in sizes if stage in results[n]]
        if len(have) < 2:
            continue
        sizes_s = have
        a, b = (results[n][stage] for n in sizes_s[-2:])
        rows_per_symbol_day = b["rows"] / (sizes_s[-1] * days)
        target = rows_per_symbol_day * symbols * years * 365
        scale = (target - b["rows"]) / max(b["rows"] - a["rows"], 1)
        est = {k: b[k] + scale * (b[k] - a[k]) for k in ("cpu_s", "peak_gib", "disk_gib")}
        print(f"extrapolated {stage:7s} {symbols} symbols x {years:g} years ({target:,.0f} rows): cpu "
              f"{est['cpu_s'] / 60:.0f} min, peak {est['peak_gib']:.2f} GiB, disk {est['disk_gib']:.1f} GiB")


def _worktree(rev: str, into: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), rev], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return into


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python bench/bench_scale.py", description=__doc__.split("\n")[0])
    p.add_argument("--symbols", default="10,40,160")
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--stages", default="build,fusion")
    p.add_argument("--export", default="none", help="--export of this tree's build (default none: the core path)")
    p.add_argument("--train-at", type=int, help="universe size the train stage runs at (default the largest)")
    p.add_argument("--experts", help="--experts of the fusion (default: every shipped expert)")
    p.add_argument("--fusion-export", default="none", help="--export of this tree's fusion (default none)")
    p.add_argument("--ref", help="git revision to compare with in the same run (a worktree of it)")
    p.add_argument("--ref-symbols", help="sizes for the reference (default: all of --symbols)")
    p.add_argument("--extrapolate", default="300x5", help="symbols x years to extrapolate to")
    p.add_argument("--work", help="scratch folder (default: a temporary one)")
    p.add_argument("--keep", action="store_true",
                   help="keep the scratch folder and each size's built data (a later --stages train reuses it)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.symbols.split(",")]
    ref_sizes = [int(s) for s in args.ref_symbols.split(",")] if args.ref_symbols else sizes
    stages = args.stages.split(",")
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_scale-"))
    work.mkdir(parents=True, exist_ok=True)
    ref_tree = _worktree(args.ref, work / "ref_tree") if args.ref and not (work / "ref_tree").exists() else (
        work / "ref_tree" if args.ref else None)
    ours, ref = {}, {}
    try:
        for n in sizes:
            raw = work / f"raw_{n}"
            if not (raw / "ground_truth.json").is_file():
                _run([sys.executable, "-m", "src.synthetic_market", "--out", str(raw), "--symbols", str(n),
                      "--days", str(args.days)], ROOT)
            if ref_tree is not None and n in ref_sizes:
                ref[n] = _stages(ref_tree, raw, work / f"ref_data_{n}", [s for s in stages if s != "train"], None,
                                 (args.experts, None))
                shutil.rmtree(work / f"ref_data_{n}", ignore_errors=True)
            mine = [st for st in stages if st != "train" or n == (args.train_at or max(sizes))]
            ours[n] = _stages(ROOT, raw, work / f"data_{n}", mine, args.export, (args.experts, args.fusion_export))
            print(json.dumps({"symbols": n, "this": ours[n], "ref": ref.get(n)}), flush=True)  # survives a kill
            if not args.keep:  # kept with --keep: a later --stages train measures on the same data
                shutil.rmtree(work / f"data_{n}", ignore_errors=True)
            print(f"-- {n} symbols done", flush=True)
        print(f"synthetic market, {args.days} days, periods 1h,4h,1d; this tree's build with --export {args.export}, "
              f"fusion with --export {args.fusion_export}{', experts ' + args.experts if args.experts else ''}")
        mine = _report("this", ours)
        if ref:
            theirs = _report("ref", ref)
            common = {n: ours[n] for n in ref}
            mine = _report("this@ref", common) if len(common) < len(ours) else mine
            for stage, slope in mine.items():
                if stage in theirs:
                    print(f"CPU per row, {stage}: reference {args.ref} {theirs[stage]:.1f} us / this tree "
                          f"{slope:.1f} us = {theirs[stage] / slope:.2f}x")
        sym, years = args.extrapolate.split("x")
        _extrapolate(ours, int(sym), float(years), args.days)
    finally:
        if ref_tree is not None and not args.keep:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(ref_tree)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
