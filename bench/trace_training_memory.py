"""Peak resident memory of each phase of one training run (Linux): where a run's memory goes.

Usage::

    python bench/trace_training_memory.py --config configs/experts/<E>/<period>/<modality>/model_config.yaml \\
        [--data-root DIR] [--set key=value ...]

Runs ``train_multi_tft.py`` in this process with its phases wrapped: before each phase the kernel's high-water
mark (``VmHWM``) is reset (``/proc/self/clear_refs``), after it the phase's peak and the resident memory left are
printed (GiB), so a peak can be pinned on the phase that makes it (reading the leaf, choosing the inputs, reading
them, fitting the scalers, calendar covariates, scaling, fitting, predicting the validation span; work between
two wrapped phases counts in the next one).
"""

from __future__ import annotations

import functools
import sys
import time


def _status() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, value = line.split(":", 1)
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 2**20
    return out


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


_PEAKS: list[float] = []


def _wrap(owner: object, name: str, label: str) -> None:
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def traced(*args: object, **kwargs: object) -> object:
        s = _status()
        _PEAKS.append(s["VmHWM"])  # of the work since the last phase (the enclosing phase's, when nested)
        print(f"[phase] {'(until ' + label + ')':26s} {'':9s}   peak {s['VmHWM']:.2f} GiB   "
              f"at {s['VmRSS']:.2f} GiB", file=sys.stderr, flush=True)
        _reset_peak()
        started = time.perf_counter()
        out = fn(*args, **kwargs)
        s = _status()
        _PEAKS.append(s["VmHWM"])
        print(f"[phase] {label:26s} {time.perf_counter() - started:7.1f} s   peak {s['VmHWM']:.2f} GiB   "
              f"after {s['VmRSS']:.2f} GiB", file=sys.stderr, flush=True)
        _reset_peak()
        return out

    setattr(owner, name, traced)


def _trace_loops(every: int = 16) -> None:
    """Print resident memory every ``every`` batches of each loop (a creep shows up here, not in a phase peak)."""
    from models.callbacks import ReleaseFreedMemory

    maybe = ReleaseFreedMemory._maybe

    def traced(self: ReleaseFreedMemory, batch_idx: int) -> None:
        maybe(self, batch_idx)
        if batch_idx % every == every - 1:
            s = _status()
            print(f"[batch] {batch_idx + 1:6d}   resident {s['VmRSS']:.2f} GiB   peak so far {s['VmHWM']:.2f} GiB",
                  file=sys.stderr, flush=True)

    ReleaseFreedMemory._maybe = traced


def main(argv: list[str] | None = None) -> int:
    """Entry point: the arguments are ``train_multi_tft.py``'s."""
    import lightning as L

    import models.callbacks as callbacks
    import models.leaf_data as leaf_data
    import models.training as training
    import models.window_dataset as windows
    import train_multi_tft

    s = _status()
    print(f"[phase] {'imports':26s} {'':9s}   peak {s['VmHWM']:.2f} GiB   after {s['VmRSS']:.2f} GiB", file=sys.stderr)
    for owner, name, label in [
        (leaf_data.LeafTable, "read", "read the leaf (narrow)"), (windows, "select_features", "choose inputs"),
        (leaf_data.LeafTable, "inputs", "read inputs (float32)"), (windows, "_scalers", "fit scalers"),
        (windows, "known_future", "calendar covariates"), (windows, "_transform_rows", "scale in place"),
        (L.Trainer, "fit", "fit"),
        (callbacks.PredictionWriter, "_write", "write predictions"), (training, "predict", "predict validation"),
    ]:
        _wrap(owner, name, label)
    _trace_loops()
    rc = train_multi_tft.main(sys.argv[1:] if argv is None else argv)
    print(f"[phase] largest phase peak {max(_PEAKS + [_status()['VmHWM']]):.2f} GiB", file=sys.stderr)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
