"""The batch gather of the window loader: numpy (what ``WindowDataset`` does) against torch's indexing kernel.

Usage::

    python bench/bench_loader.py [--rows 100000] [--features 61] [--encoder 64] [--batch 256]

Prints samples/s of each way of gathering a batch of windows ``x[end - L + 1 .. end]`` and the ratio. Run it on
a busy machine too (say beside the test suite): torch splits these small gathers over its thread pool, which
stalls when the cores are taken.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _rate(fn, ends: np.ndarray, batch: int) -> float:
    started = time.perf_counter()
    for k in range(0, len(ends), batch):
        fn(ends[k:k + batch])
    return len(ends) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python bench/bench_loader.py", description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--features", type=int, default=61)
    p.add_argument("--encoder", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batches", type=int, default=200)
    args = p.parse_args(argv)
    x = torch.randn(args.rows, args.features)
    offsets = np.arange(-args.encoder + 1, 1)
    ends = np.random.default_rng(0).integers(args.encoder, args.rows, args.batch * args.batches)
    t_off = torch.from_numpy(offsets)

    def torch_gather(e: np.ndarray) -> torch.Tensor:
        end = torch.from_numpy(e)
        return x[end[:, None] + t_off[None, :]]

    def numpy_gather(e: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x.numpy()[e[:, None] + offsets[None, :]])

    assert torch.equal(torch_gather(ends[:8]), numpy_gather(ends[:8]))
    rates = {"torch": _rate(torch_gather, ends, args.batch), "numpy": _rate(numpy_gather, ends, args.batch)}
    print(f"{args.rows:,} rows x {args.features} features, encoder {args.encoder}, batch {args.batch}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"gather samples/s: torch {rates['torch']:,.0f}  numpy {rates['numpy']:,.0f}  "
          f"ratio {rates['numpy'] / rates['torch']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
