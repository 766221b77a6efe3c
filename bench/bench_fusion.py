"""Fusion benchmark: wall time and peak memory of the default fusion (all experts and modalities).

Usage::

    python bench/bench_fusion.py [--config pipelines/configs/fuse_fundamentals.yaml]

Needs the merged panel (``make demo`` or ``python src/build_full_merged.py``). Prints the
figures and their ratio to the issue's goals (60 s, 4 GiB on the 2-core CI machine): a ratio
below 1.0 meets the goal.
"""

from __future__ import annotations

import argparse
import resource
import time

from src.fuse_fundamentals import run_with_config

GOAL_SECONDS = 60.0
GOAL_BYTES = 4 * 1024**3


def main(argv: list[str] | None = None) -> int:
    """Run the fusion once and print wall time, peak RSS and ratios to the goals."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="pipelines/configs/fuse_fundamentals.yaml")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    results = run_with_config(args.config)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    rows = sum(len(r.table) for r in results.values())
    print(f"datasets={len(results)}  rows written={rows:,}")
    for name, res in results.items():
        print(f"  {name:30s} rows={len(res.table):>8,}  fused columns={len(res.fundamental_columns):>3}  "
              f"{res.seconds:5.1f} s")
    print(f"wall time: {wall:.1f} s   (goal {GOAL_SECONDS:.0f} s, ratio {wall / GOAL_SECONDS:.2f})")
    print(f"peak RSS:  {peak / 1024**3:.2f} GiB (goal 4 GiB, ratio {peak / GOAL_BYTES:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
