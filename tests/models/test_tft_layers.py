"""The TFT blocks written in ``models.tft_layers`` against pytorch-forecasting's: same parameter names, same
initial weights for a seed, same outputs and gradients on shared weights (train mode: same dropout masks)."""

import subprocess
import sys

import pytest
import torch
from pytorch_forecasting.models.temporal_fusion_transformer import sub_modules as ref

from models import tft_layers as ours

CASES = [
    ("GatedLinearUnit", (16,), {"hidden_size": 8, "dropout": 0.2}, [(5, 7, 16)]),
    ("GatedLinearUnit", (16,), {}, [(5, 16)]),
    ("AddNorm", (8,), {"skip_size": 12, "trainable_add": True}, [(5, 7, 8), (5, 7, 12)]),
    ("AddNorm", (8,), {"trainable_add": False}, [(5, 8), (5, 8)]),
    ("ResampleNorm", (12, 8), {}, [(5, 7, 12)]),
    ("GateAddNorm", (16,), {"dropout": 0.1}, [(5, 7, 16), (5, 7, 16)]),
    ("GateAddNorm", (16,), {"hidden_size": 8, "skip_size": 4, "trainable_add": True}, [(5, 16), (5, 4)]),
    # the variable selector's GRN (wide input, few outputs, resampled residual, context) and the plain one
    ("GatedResidualNetwork", (24, 16, 6, 0.1, 16), {"residual": False}, [(5, 7, 24), (5, 7, 16)]),
    ("GatedResidualNetwork", (16, 16, 16, 0.1), {}, [(5, 16)]),
    ("GatedResidualNetwork", (24, 16, 6, 0.1), {"residual": True}, [(5, 24), None, (5, 6)]),
]


def _build(module, name, args, kwargs, seed):
    torch.manual_seed(seed)
    return getattr(module, name)(*args, **kwargs)


def _inputs(shapes, seed):
    g = torch.Generator().manual_seed(seed)
    return [None if s is None else torch.randn(*s, generator=g, requires_grad=True) for s in shapes]


def _run(model, inputs, train, seed):
    model.train(train)
    torch.manual_seed(seed)
    out = model(*inputs)
    first = out[0] if isinstance(out, tuple) else out
    first.square().sum().backward()
    return out, [p.grad for p in model.parameters()] + [x.grad for x in inputs if x is not None]


@pytest.mark.parametrize(("name", "args", "kwargs", "shapes"), CASES)
def test_blocks_match_pytorch_forecasting(name, args, kwargs, shapes):
    mine, theirs = _build(ours, name, args, kwargs, 3), _build(ref, name, args, kwargs, 3)
    a, b = mine.state_dict(), theirs.state_dict()
    assert list(a) == list(b)  # checkpoints written with the imported blocks load unchanged
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)  # same initial weights for a seed
    for train in (False, True):
        out_a, grads_a = _run(mine, _inputs(shapes, 5), train, 11)
        out_b, grads_b = _run(theirs, _inputs(shapes, 5), train, 11)
        torch.testing.assert_close(out_a, out_b)
        for ga, gb in zip(grads_a, grads_b, strict=True):
            torch.testing.assert_close(ga, gb)
        mine.zero_grad()
        theirs.zero_grad()


@pytest.mark.parametrize("heads", [1, 4])
def test_attention_matches_pytorch_forecasting(heads):
    mine = _build(ours, "InterpretableMultiHeadAttention", (), {"n_head": heads, "d_model": 16, "dropout": 0.1}, 2)
    theirs = _build(ref, "InterpretableMultiHeadAttention", (), {"n_head": heads, "d_model": 16, "dropout": 0.1}, 2)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    for key, value in mine.state_dict().items():
        torch.testing.assert_close(value, theirs.state_dict()[key], rtol=0, atol=0)
    mask = torch.triu(torch.ones(3, 9, dtype=torch.bool), diagonal=7).unsqueeze(0).expand(4, -1, -1)
    for train in (False, True):
        q, kv = _inputs([(4, 3, 16), (4, 9, 16)], 8)
        out_a, grads_a = _run(mine, [q, kv, kv, mask], train, 4)
        q, kv = _inputs([(4, 3, 16), (4, 9, 16)], 8)
        out_b, grads_b = _run(theirs, [q, kv, kv, mask], train, 4)
        torch.testing.assert_close(out_a[0], out_b[0])
        torch.testing.assert_close(out_a[1], out_b[1])
        assert out_a[1][:, :2, :, 8].abs().max() < 1e-6  # masked (future) steps get no weight
        for ga, gb in zip(grads_a, grads_b, strict=True):
            torch.testing.assert_close(ga, gb)
        mine.zero_grad()
        theirs.zero_grad()


def test_training_does_not_import_pytorch_forecasting():
    code = "import sys, models.training, models.prediction; print('pytorch_forecasting' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
