"""What a leaf's checkpoint folder says about its run (read from disk, so it works across processes)."""

from __future__ import annotations

from pathlib import Path

import torch


def read_spec(path: Path) -> dict:
    """The self-contained description a checkpoint stores (config with split dates, features, scalers, ...)."""
    return torch.load(path, map_location="cpu", weights_only=False)["hyper_parameters"]["spec"]


def checkpoint_outcome(last: Path) -> tuple[str, float | None]:
    """Best checkpoint path and score, read from ``last.ckpt``'s ModelCheckpoint state.

    Read from disk rather than from the callback object because under ``ddp_spawn`` training runs in
    worker processes and the parent's callback never sees the updates.
    """
    if not last.is_file():
        return "", None
    callbacks = torch.load(last, map_location="cpu", weights_only=False).get("callbacks", {})
    state = next((v for k, v in callbacks.items() if k.startswith("ModelCheckpoint")), {})
    score = state.get("best_model_score")
    return state.get("best_model_path", ""), float(score) if score is not None else None
