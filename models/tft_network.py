"""The Temporal Fusion Transformer network and its multi-target loss (no Lightning, no I/O).

Architecture (Lim et al., 2021): static covariate encoders feeding four context vectors;
variable selection networks (static / encoder / decoder); an LSTM encoder-decoder initialised
from the static context; static enrichment; interpretable multi-head attention with a causal
mask; gated skip connections throughout. Gated residual networks, the interpretable attention
and gate-add-norm blocks are pytorch-forecasting's modules. The variable selection network is
vectorized here (one batched matmul for all variables) because pytorch-forecasting's runs one
small network per variable, which dominates the cost with hundreds of inputs.

One head per target reads the decoder step at the target's horizon: a logit for classification,
quantiles (P10/P50/P90 by default) for regression. With ``linear_skip`` every head also gets a linear map of
the decision bar's (last encoder step's) scaled inputs, initialised at zero: the "highway" of LSTNet (Lai et al.,
2018). Deep sequence models learn a signal that is linear in the latest inputs slowly through their gates and
attention; the skip gives them the logistic / linear baseline from the first steps, and the TFT learns what is
left (interactions, history). With ``interaction_l2 > 0`` the skip also carries every pairwise interaction of those
inputs, ``tanh(x_i * x_j)`` for ``i < j``, under a ridge penalty ``interaction_l2 * sum(w^2)`` that the training
loss adds (:meth:`TFTNet.penalty`): a quadratic logistic / linear model with hierarchical shrinkage (main effects
nearly free, interactions strongly shrunk), the prior of factorization machines without their low rank. A deep
net learns products of weak inputs slowly on noisy returns, and all products under the main effects' penalty fit
noise; under a strong separate ridge they add small, diffuse corrections (``bench/bench_interactions.py``).
With ``pairs`` the skip carries only those products (no extra penalty): the few that a score test on the training
span singles out (:class:`features.interactions.PairScreen`, ``model.interaction_pairs``).
Quantiles are ordered by construction: the head outputs the median and non-negative (softplus) increments
outwards from it, so P10 <= P50 <= P90 for every input. :class:`HybridMultiLoss` weights BCE (or focal) and
pinball losses per target.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from features.interactions import CLIP
from models.tft_layers import GateAddNorm, GatedResidualNetwork, InterpretableMultiHeadAttention
from utils.loss_factory import check_loss, get_loss


class VectorizedVSN(nn.Module):
    """Variable selection over ``n_vars`` scalar inputs, all variables in one batched op.

    Each variable is embedded by its own linear map (weights ``[n_vars, d]``) and passed through a
    per-variable GRN implemented with grouped (einsum) weights; a context-aware GRN over the
    flattened embeddings produces softmax selection weights.
    """

    def __init__(self, n_vars: int, d_embed: int, hidden: int, dropout: float, context_size: int | None) -> None:
        super().__init__()
        self.n_vars = n_vars
        self.embed_w = nn.Parameter(torch.randn(n_vars, d_embed) * 0.1)
        self.embed_b = nn.Parameter(torch.zeros(n_vars, d_embed))
        # per-variable GRN (ELU hidden + GLU gate + skip projection), grouped weights
        # hidden layer of width d_embed, as in the paper's single-variable GRNs (min(input, hidden))
        self.w1 = nn.Parameter(torch.randn(n_vars, d_embed, d_embed) / math.sqrt(d_embed))
        self.b1 = nn.Parameter(torch.zeros(n_vars, d_embed))
        self.w2 = nn.Parameter(torch.randn(n_vars, d_embed, 2 * hidden) / math.sqrt(d_embed))
        self.b2 = nn.Parameter(torch.zeros(n_vars, 2 * hidden))
        self.skip = nn.Parameter(torch.randn(n_vars, d_embed, hidden) / math.sqrt(d_embed))
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.selector = GatedResidualNetwork(n_vars * d_embed, hidden, n_vars, dropout, context_size, residual=False)
        self.chunk_steps = 0  # > 0: recompute the selection in chunks of this many steps (see forward)

    #: Time steps per chunk of the selection in training with ``training.activation_checkpointing`` (on this
    #: CPU 4 was the fastest, faster than no chunks: small chunks stay in cache; bench/RESULTS.md).
    CHUNK_STEPS = 4
    #: Largest temporary of an inference chunk (elements of ``[batch, steps, n_vars, 2 x hidden]``) per device type.
    #: On a CPU ~4 MB: chunk temporaries that small are reused from the C heap from batch to batch, while larger ones
    #: fragment it and resident memory grows by ~2x the live temporaries over a prediction pass. On a GPU only a
    #: cap on memory (large chunks: fewer kernel launches).
    INFERENCE_ELEMENTS = {"cpu": 1 << 20}
    _DEFAULT_INFERENCE_ELEMENTS = 1 << 28

    def _inference_steps(self, x: torch.Tensor) -> int:
        """Time steps per chunk of a ``[B, T, n_vars]`` input without gradients."""
        budget = self.INFERENCE_ELEMENTS.get(x.device.type, self._DEFAULT_INFERENCE_ELEMENTS)
        return max(1, budget // max(1, x.shape[0] * self.n_vars * self.w2.shape[-1]))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: [..., n_vars] -> (selected [..., hidden], weights [..., n_vars]).

        The per-variable ``[B, T, V, 2H]`` activations are most of a step's memory, so a ``[B, T, n_vars]`` input
        runs in chunks of time steps (the selection is per step: same values): always without gradients
        (prediction, validation; chunk size from :attr:`INFERENCE_ELEMENTS`), and in training when ``chunk_steps``
        is set, under activation checkpointing: each chunk keeps only its inputs for the backward pass and is
        recomputed there (same gradients, dropout masks replayed), at the cost of a second forward of this network.
        """
        if x.dim() != 3:
            return self._select(x, context)
        if not torch.is_grad_enabled():  # inference: nothing is kept for a backward pass, chunks cost nothing
            steps = self._inference_steps(x)
            if steps >= x.shape[1]:
                return self._select(x, context)
            parts = [self._select(part, context) for part in x.split(steps, dim=1)]
        elif self.chunk_steps and x.shape[1] > self.chunk_steps:
            parts = [checkpoint(self._select, part, context, use_reentrant=False)
                     for part in x.split(self.chunk_steps, dim=1)]
        else:
            return self._select(x, context)
        return torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)

    def _select(self, x: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        e = x.unsqueeze(-1) * self.embed_w + self.embed_b  # [..., V, d]
        h = nn.functional.elu(torch.einsum("...vd,vdh->...vh", e, self.w1) + self.b1)
        # No dropout on this [..., V, 2H] tensor: sampling it dominated the step time on CPU.
        h = torch.einsum("...vh,vhk->...vk", h, self.w2) + self.b2
        h = nn.functional.glu(h, dim=-1) + torch.einsum("...vd,vdh->...vh", e, self.skip)
        h = self.norm(h)
        ctx = context
        if ctx is not None and e.dim() == 4:  # time-varying input, static context [B, C]
            ctx = ctx.unsqueeze(1).expand(-1, e.shape[1], -1)
        weights = torch.softmax(self.selector(e.flatten(-2), ctx), dim=-1)
        return self.drop((h * weights.unsqueeze(-1)).sum(-2)), weights


def ordered_quantiles(raw: torch.Tensor, median_idx: int) -> torch.Tensor:
    """Quantiles ``[..., Q]`` that never cross: ``raw[median_idx]`` is the median, the other entries are turned
    into non-negative steps (softplus) added above it or subtracted below it, cumulatively outwards."""
    mid = raw[..., median_idx : median_idx + 1]
    up = torch.cumsum(nn.functional.softplus(raw[..., median_idx + 1 :]), dim=-1)
    down = torch.flip(torch.cumsum(nn.functional.softplus(torch.flip(raw[..., :median_idx], [-1])), dim=-1), [-1])
    return torch.cat([mid - down, mid, mid + up], dim=-1)


class TFTNet(nn.Module):
    """The network; ``forward(batch) -> dict(pred=[B, T, Q], weights...)``."""

    def __init__(self, n_enc: int, n_dec: int, n_symbols: int, n_periods: int, n_targets: int, head_steps: list[int],
                 hidden: int, heads: int, lstm_layers: int, dropout: float, d_embed: int, n_quantiles: int,
                 median_idx: int | None = None, regression: list[bool] | None = None,
                 linear_skip: bool = False, interaction_l2: float = 0.0,
                 pairs: list[tuple[int, int]] | None = None) -> None:
        super().__init__()
        self.head_steps = head_steps
        # regression heads: raw[median] is P50, the other raw outputs are softplus increments outwards from it
        self.median_idx = median_idx
        self.register_buffer("is_reg", torch.tensor(regression or [False] * n_targets, dtype=torch.bool),
                             persistent=False)
        self.sym_emb = nn.Embedding(n_symbols, hidden)
        self.per_emb = nn.Embedding(n_periods, hidden)
        self.static_select = GatedResidualNetwork(2 * hidden, hidden, 2, dropout)
        self.ctx = nn.ModuleDict({k: GatedResidualNetwork(hidden, hidden, hidden, dropout)
                                  for k in ("select", "enrich", "h", "c")})
        self.enc_vsn = VectorizedVSN(n_enc, d_embed, hidden, dropout, hidden)
        self.dec_vsn = VectorizedVSN(n_dec, d_embed, hidden, dropout, hidden)
        self.lstm_layers = lstm_layers
        self.encoder = nn.LSTM(hidden, hidden, lstm_layers, batch_first=True, dropout=dropout if lstm_layers > 1 else 0)
        self.decoder = nn.LSTM(hidden, hidden, lstm_layers, batch_first=True, dropout=dropout if lstm_layers > 1 else 0)
        self.post_lstm = GateAddNorm(hidden, dropout=dropout)
        self.enrich = GatedResidualNetwork(hidden, hidden, hidden, dropout, context_size=hidden)
        self.attn = InterpretableMultiHeadAttention(n_head=heads, d_model=hidden, dropout=dropout)
        self.post_attn = GateAddNorm(hidden, dropout=dropout)
        self.pos_ff = GatedResidualNetwork(hidden, hidden, hidden, dropout)
        self.pre_out = GateAddNorm(hidden, dropout=None)
        # one linear head per target: weights [target, hidden, quantile]
        self.head_w = nn.Parameter(torch.randn(n_targets, hidden, n_quantiles) / math.sqrt(hidden))
        self.head_b = nn.Parameter(torch.zeros(n_targets, n_quantiles))
        # weights [input, target, quantile]; zero at start, so training begins from the plain TFT
        self.skip_w = nn.Parameter(torch.zeros(n_enc, n_targets, n_quantiles)) if linear_skip else None
        self.interaction_l2 = float(interaction_l2)
        self.pair_w = None
        if linear_skip and (interaction_l2 > 0 or pairs):
            # every pair under the ridge penalty, or the few screened on the training span (features.interactions)
            left, right = (torch.triu_indices(n_enc, n_enc, 1) if interaction_l2 > 0
                           else torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).T)
            self.register_buffer("pair_left", left, persistent=False)
            self.register_buffer("pair_right", right, persistent=False)
            self.pair_w = nn.Parameter(torch.zeros(left.numel(), n_targets, n_quantiles))

    def _static(self, cat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = torch.stack([self.sym_emb(cat[:, 0]), self.per_emb(cat[:, 1])], dim=1)  # [B, 2, H]
        w = torch.softmax(self.static_select(emb.flatten(1)), dim=-1)
        return (emb * w.unsqueeze(-1)).sum(1), w

    def _recurrent(self, enc_x: torch.Tensor, dec_x: torch.Tensor, h0: torch.Tensor,
                   c0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The LSTM encoder-decoder. Under CPU autocast (``bf16-mixed`` on a CPU) it runs in float32: oneDNN has no
        bf16 LSTM primitive on many CPUs ("could not create a primitive descriptor"); CUDA keeps autocast."""
        if enc_x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return self._recurrent(enc_x.float(), dec_x.float(), h0.float(), c0.float())
        enc_out, state = self.encoder(enc_x, (h0, c0))
        dec_out, _ = self.decoder(dec_x, state)
        return enc_out, dec_out

    def _skip(self, last: torch.Tensor) -> torch.Tensor:
        """Linear (and, with ``pair_w``, pairwise-interaction) map of the decision bar's scaled inputs, [B, T, Q]."""
        out = torch.einsum("bv,vtq->btq", last, self.skip_w)
        if self.pair_w is not None:
            # clipped so that one outlying input cannot saturate every product it enters
            x = last.clamp(-CLIP, CLIP)
            out = out + torch.einsum("bp,ptq->btq", torch.tanh(x[:, self.pair_left] * x[:, self.pair_right]),
                                     self.pair_w)
        return out

    def penalty(self, target_weights: torch.Tensor | None = None) -> torch.Tensor:
        """Ridge penalty of the interaction weights (0 without them), added to the training loss.

        ``target_weights`` ([T], summing to 1) are the shares of each target in the training loss
        (:class:`HybridMultiLoss`): each head's weights are penalized in units of its own per-sample loss, as a
        ridge regression of that target alone would be.
        """
        if self.pair_w is None or self.interaction_l2 == 0:
            return torch.zeros((), device=self.head_b.device)
        per_target = self.pair_w.pow(2).sum(dim=(0, 2))
        if target_weights is not None:
            per_target = per_target * target_weights
        return self.interaction_l2 * per_target.sum()

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run the TFT on one batch."""
        static, static_w = self._static(batch["static_cat"])
        c_sel = self.ctx["select"](static)
        enc_x, enc_w = self.enc_vsn(batch["encoder_cont"], c_sel)
        dec_x, dec_w = self.dec_vsn(batch["decoder_known"], c_sel)
        h0 = self.ctx["h"](static).unsqueeze(0).expand(self.lstm_layers, -1, -1).contiguous()
        c0 = self.ctx["c"](static).unsqueeze(0).expand(self.lstm_layers, -1, -1).contiguous()
        enc_out, dec_out = self._recurrent(enc_x, dec_x, h0, c0)
        seq = self.post_lstm(torch.cat([enc_out, dec_out], 1), torch.cat([enc_x, dec_x], 1))
        enriched = self.enrich(seq, self.ctx["enrich"](static).unsqueeze(1).expand(-1, seq.shape[1], -1))
        n_enc, n_dec = enc_x.shape[1], dec_x.shape[1]
        q = enriched[:, n_enc:]
        # decoder step i may attend to the encoder and to decoder steps <= i
        mask = torch.triu(torch.ones(n_dec, n_enc + n_dec, dtype=torch.bool, device=q.device), diagonal=n_enc + 1)
        att, att_w = self.attn(q, enriched, enriched, mask=mask.unsqueeze(0).expand(q.shape[0], -1, -1))
        out = self.post_attn(att, q)
        out = self.pre_out(self.pos_ff(out), seq[:, n_enc:])
        steps = torch.as_tensor(self.head_steps, device=out.device)
        picked = out[:, steps]  # [B, T, H]: each target reads the decoder step at its horizon
        pred = torch.einsum("bth,thq->btq", picked, self.head_w) + self.head_b
        if self.skip_w is not None:
            pred = pred + self._skip(batch["encoder_cont"][:, -1])
        if self.median_idx is not None and pred.shape[-1] > 1:
            pred = torch.where(self.is_reg[None, :, None], ordered_quantiles(pred, self.median_idx), pred)
        return {"pred": pred, "encoder_weights": enc_w, "decoder_weights": dec_w, "static_weights": static_w,
                "attention": att_w}


class TFTEnsemble(nn.Module):
    """``K`` independently initialised :class:`TFTNet` members, trained side by side on the same batches.

    ``forward`` returns the members' mean of every output (logits, ordered quantiles, selection and attention
    weights: the mean of ordered quantiles stays ordered) and ``member_pred`` ``[K, B, T, Q]``, from which the
    training loss is the members' mean loss: each member is fit to the targets on its own (a deep ensemble,
    Lakshminarayanan et al., 2017), not the average to them, which would make one wide network whose parts
    co-adapt. Under Adam the ``1/K`` of the mean does not change a member's steps. Members differ by their
    initialisation and dropout draws; on noisy returns the spread between such runs is as large as most levers
    (``bench/RESULTS.md``), and averaging them is the plainest way to remove it.
    """

    def __init__(self, members: list[TFTNet]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)

    @property
    def pair_w(self) -> nn.Parameter | None:
        """The first member's interaction weights (all members are built alike): ``None`` without them."""
        return self.members[0].pair_w

    def penalty(self, target_weights: torch.Tensor | None = None) -> torch.Tensor:
        """The members' mean penalty (each member's penalty in units of its own loss, as the loss is their mean)."""
        return torch.stack([m.penalty(target_weights) for m in self.members]).mean()

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The members' mean outputs, and ``member_pred`` for the loss."""
        outs = [m(batch) for m in self.members]
        mean = {k: torch.stack([o[k] for o in outs]).mean(0) for k in outs[0]}
        mean["member_pred"] = torch.stack([o["pred"] for o in outs])
        return mean


class HybridMultiLoss(nn.Module):
    """Weighted sum over targets of named losses (``utils.loss_factory``); NaN targets are masked.

    Parameters
    ----------
    kinds : list of str
        ``'classification'`` or ``'regression'`` per target.
    weights : list of float
        Loss weight per target.
    quantiles : list of float
        Quantile levels of regression heads.
    classification_loss : str
        Loss of classification heads (``bce`` or ``focal``).
    focal_gamma : float
        ``gamma`` of the focal loss.
    regression_loss : str
        Loss of regression heads (``pinball``).
    """

    def __init__(self, kinds: list[str], weights: list[float], quantiles: list[float],
                 classification_loss: str = "bce", focal_gamma: float = 2.0, regression_loss: str = "pinball") -> None:
        super().__init__()
        self.kinds = kinds
        self.register_buffer("w", torch.tensor(weights, dtype=torch.float32))
        self.register_buffer("q", torch.tensor(quantiles, dtype=torch.float32))
        self.classification_loss = classification_loss
        cls_params = {"gamma": focal_gamma} if classification_loss == "focal" else {}
        self._cls = get_loss(classification_loss, "classification", **cls_params)
        self._reg_name = regression_loss
        check_loss(regression_loss, "regression")

    def components(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Unweighted loss per target, shape [T]."""
        reg = get_loss(self._reg_name, "regression", quantiles=self.q)  # bound here: q follows the device
        out = []
        for k, kind in enumerate(self.kinds):
            y = target[:, k]
            ok = torch.isfinite(y)
            if not ok.any():
                out.append(pred.new_zeros(()))
                continue
            fn = self._cls if kind == "classification" else reg
            out.append(fn(pred[ok, k, :], y[ok]).mean())
        return torch.stack(out)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(total weighted loss, per-target components)."""
        comp = self.components(pred, target)
        return (comp * self.w).sum() / self.w.sum().clamp_min(1e-12), comp
