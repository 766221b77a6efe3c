"""Losses by name: the registry behind a leaf's ``weights_config.yaml`` (``classification_loss``) and the
regression heads.

Each loss maps a target's head output ``pred`` ``[n, Q]`` (a classification head uses entry 0, its logit)
and finite labels ``y`` ``[n]`` to a per-row loss ``[n]``; ``HybridMultiLoss`` (``models.tft_module``)
averages and weights them per target. :func:`get_loss` turns a name into its loss with its parameters; an
unknown name is a :class:`~utils.errors.ConfigError` listing the valid ones.

* ``bce``: binary cross-entropy on the logit;
* ``focal``: focal loss ``(1 - p_t)^gamma * bce`` (``gamma``, default 2);
* ``pinball``: the quantile loss averaged over the head's levels (``quantiles``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from utils.config import registered

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def bce(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the logit ``pred[:, 0]`` per row."""
    return nn.functional.binary_cross_entropy_with_logits(pred[:, 0], y, reduction="none")


def focal(pred: torch.Tensor, y: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss per row: easy, well-classified rows are down-weighted by ``(1 - p_t)^gamma``."""
    loss = bce(pred, y)
    return (1 - torch.exp(-loss)) ** gamma * loss


def pinball(pred: torch.Tensor, y: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """Pinball loss per row, averaged over the quantile levels ``quantiles`` ``[Q]`` (on ``pred``'s device)."""
    err = y[:, None] - pred
    return torch.maximum(quantiles * err, (quantiles - 1) * err).mean(-1)


@dataclass(frozen=True)
class Loss:
    """A named loss: the target kind it serves and its function."""

    name: str
    kind: str  # "classification" or "regression"
    fn: Callable[..., torch.Tensor]


LOSSES: dict[str, Loss] = {m.name: m for m in (
    Loss("bce", "classification", bce), Loss("focal", "classification", focal),
    Loss("pinball", "regression", pinball),
)}


def check_loss(name: str, kind: str | None = None) -> Loss:
    """The loss called ``name`` (of ``kind`` when given); a ``ConfigError`` lists the valid names otherwise."""
    return registered(LOSSES, name, kind, "loss")


def get_loss(name: str, kind: str | None = None, **params) -> LossFn:
    """``loss(pred, y) -> per-row loss`` for ``name`` with its parameters bound (``gamma``, ``quantiles``)."""
    return functools.partial(check_loss(name, kind).fn, **params)
