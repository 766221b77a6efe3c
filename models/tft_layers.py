"""The TFT's gated building blocks (Lim et al. 2021, section 4.1), written here instead of imported.

They follow pytorch-forecasting's ``temporal_fusion_transformer.sub_modules`` layer for layer: the same parameter
names (checkpoints written with the imported blocks load unchanged), the same initialisation in the same order (a
seed gives the same weights) and the same outputs (``tests/models/test_tft_layers.py`` compares both on shared
weights). Importing pytorch-forecasting for these four classes cost ~130 MB of resident memory and ~2 s in every
training process (it imports its data package, which pulls in scikit-learn and more); the reference package is
still used by ``bench/bench_training.py`` for its own TFT.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _resample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Linear interpolation of the last axis to ``size`` points (end points kept), any leading shape."""
    flat = x.reshape(-1, 1, x.shape[-1])
    out = F.interpolate(flat, size, mode="linear", align_corners=True)
    return out.reshape(*x.shape[:-1], size)


class GatedLinearUnit(nn.Module):
    """Dropout, then a linear map to ``2 * hidden_size`` and a GLU gate."""

    def __init__(self, input_size: int, hidden_size: int | None = None, dropout: float | None = None) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout is not None else None
        self.hidden_size = hidden_size or input_size
        self.fc = nn.Linear(input_size, self.hidden_size * 2)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dropout is not None:
            x = self.dropout(x)
        return F.glu(self.fc(x), dim=-1)


class _GatedNorm(nn.Module):
    """LayerNorm of ``x (+ skip)``, the second operand resampled to the width and, optionally, scaled by a
    trainable gate (``2 * sigmoid(mask)``, 1 at initialisation)."""

    def __init__(self, size: int, other_size: int | None, trainable_add: bool) -> None:
        super().__init__()
        self.size = size
        self.other_size = other_size or size
        self.trainable_add = trainable_add
        if trainable_add:
            self.mask = nn.Parameter(torch.zeros(size, dtype=torch.float))
        self.norm = nn.LayerNorm(size)

    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        if self.other_size != self.size:
            x = _resample(x, self.size)
        if self.trainable_add:
            x = x * torch.sigmoid(self.mask) * 2.0
        return x


class AddNorm(_GatedNorm):
    """``LayerNorm(x + skip)`` with ``skip`` resampled to the width of ``x``."""

    def __init__(self, input_size: int, skip_size: int | None = None, trainable_add: bool = True) -> None:
        super().__init__(input_size, skip_size, trainable_add)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self._adapt(skip))


class ResampleNorm(_GatedNorm):
    """``LayerNorm`` of ``x`` resampled from ``input_size`` to ``output_size``."""

    def __init__(self, input_size: int, output_size: int | None = None, trainable_add: bool = True) -> None:
        super().__init__(output_size or input_size, input_size, trainable_add)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self._adapt(x))


class GateAddNorm(nn.Module):
    """GLU of ``x`` added to ``skip`` and layer-normalised."""

    def __init__(self, input_size: int, hidden_size: int | None = None, skip_size: int | None = None,
                 trainable_add: bool = False, dropout: float | None = None) -> None:
        super().__init__()
        self.hidden_size = hidden_size or input_size
        self.glu = GatedLinearUnit(input_size, hidden_size=self.hidden_size, dropout=dropout)
        self.add_norm = AddNorm(self.hidden_size, skip_size=skip_size or self.hidden_size, trainable_add=trainable_add)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.add_norm(self.glu(x), skip)


class GatedResidualNetwork(nn.Module):
    """``GateAddNorm(fc2(elu(fc1(x) + context)), residual)``; the residual is ``x`` resampled to the output width
    when the widths differ (and ``residual`` is false)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, dropout: float = 0.1,
                 context_size: int | None = None, residual: bool = False) -> None:
        super().__init__()
        self.input_size, self.output_size, self.residual = input_size, output_size, residual
        self.resamples = input_size != output_size and not residual
        if self.resamples:
            self.resample_norm = ResampleNorm(input_size, output_size)
        self.fc1 = nn.Linear(input_size, hidden_size)
        self.elu = nn.ELU()
        if context_size is not None:
            self.context = nn.Linear(context_size, hidden_size, bias=False)
        self.fc2 = nn.Linear(hidden_size, hidden_size)
        # the reference's order (fc1, context, fc2), so that a seed draws the same weights
        nn.init.kaiming_normal_(self.fc1.weight, a=0, mode="fan_in", nonlinearity="leaky_relu")
        nn.init.zeros_(self.fc1.bias)
        if context_size is not None:
            nn.init.xavier_uniform_(self.context.weight)
        nn.init.kaiming_normal_(self.fc2.weight, a=0, mode="fan_in", nonlinearity="leaky_relu")
        nn.init.zeros_(self.fc2.bias)
        self.gate_norm = GateAddNorm(hidden_size, skip_size=output_size, hidden_size=output_size, dropout=dropout,
                                     trainable_add=False)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        residual = x if residual is None else residual
        if self.resamples:
            residual = self.resample_norm(residual)
        x = self.fc1(x)
        if context is not None:
            x = x + self.context(context)
        return self.gate_norm(self.fc2(self.elu(x)), residual)


class InterpretableMultiHeadAttention(nn.Module):
    """Multi-head attention whose heads share one value projection and are averaged, so the averaged attention
    weights describe what the output used (the TFT's interpretable attention).

    ``forward(q, k, v, mask)`` returns the output ``[B, Tq, d_model]`` and the weights ``[B, Tq, heads, Tk]``;
    ``mask`` (``[B, Tq, Tk]``, true = hidden) is filled with ``mask_bias`` before the softmax.
    """

    def __init__(self, n_head: int, d_model: int, dropout: float = 0.0, mask_bias: float = -1e9) -> None:
        super().__init__()
        self.n_head, self.d_model, self.mask_bias = n_head, d_model, mask_bias
        self.d_k = self.d_q = self.d_v = d_model // n_head
        self.dropout = nn.Dropout(p=dropout)
        self.v_layer = nn.Linear(d_model, self.d_v)
        self.q_layers = nn.ModuleList([nn.Linear(d_model, self.d_q) for _ in range(n_head)])
        self.k_layers = nn.ModuleList([nn.Linear(d_model, self.d_k) for _ in range(n_head)])
        self.w_h = nn.Linear(self.d_v, d_model, bias=False)
        for name, p in self.named_parameters():
            if "bias" in name:
                nn.init.zeros_(p)
            else:
                nn.init.xavier_uniform_(p)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        vs = self.v_layer(v)
        heads, attns = [], []
        for q_layer, k_layer in zip(self.q_layers, self.k_layers, strict=True):
            ks = k_layer(k)
            attn = torch.bmm(q_layer(q), ks.transpose(1, 2))
            # scaled by sqrt(d_k) computed in the scores' dtype, as the reference does (same bits under autocast)
            attn = attn / torch.as_tensor(ks.shape[-1], dtype=attn.dtype, device=attn.device).sqrt()
            if mask is not None:
                attn = attn.masked_fill(mask, self.mask_bias)
            attn = torch.softmax(attn, dim=2)
            heads.append(self.dropout(torch.bmm(attn, vs)))
            attns.append(attn)
        out = torch.stack(heads, dim=2).mean(dim=2) if self.n_head > 1 else heads[0]
        return self.dropout(self.w_h(out)), torch.stack(attns, dim=2)
