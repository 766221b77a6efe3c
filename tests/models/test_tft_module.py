import pytest
import torch

from models.tft_network import TFTEnsemble, TFTNet, ordered_quantiles


def test_ordered_quantiles_never_cross_and_keep_the_median():
    g = torch.Generator().manual_seed(0)
    for q, mid in ((3, 1), (5, 2), (4, 1)):
        raw = torch.randn(2000, 3, q, generator=g) * 5
        out = ordered_quantiles(raw, mid)
        assert (out[..., 1:] >= out[..., :-1]).all()
        assert torch.equal(out[..., mid], raw[..., mid])


def _net(median_idx, linear_skip=False, interaction_l2=0.0):
    return TFTNet(n_enc=5, n_dec=2, n_symbols=3, n_periods=1, n_targets=2, head_steps=[0, 1], hidden=8, heads=2,
                  lstm_layers=1, dropout=0.0, d_embed=4, n_quantiles=3, median_idx=median_idx,
                  regression=[False, True], linear_skip=linear_skip, interaction_l2=interaction_l2)


def _pair_index(net, i, j):
    """Position of the product ``x_i * x_j`` in the interaction weights."""
    pairs = list(zip(net.pair_left.tolist(), net.pair_right.tolist(), strict=True))
    return pairs.index((i, j))


def _batch(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"encoder_cont": torch.randn(n, 6, 5, generator=g) * 4, "decoder_known": torch.randn(n, 2, 2, generator=g),
            "static_cat": torch.randint(0, 3, (n, 2), generator=g) * torch.tensor([1, 0])}


def test_network_regression_heads_are_ordered_on_random_inputs():
    torch.manual_seed(0)
    net = _net(1)
    with torch.no_grad():
        net.head_b.normal_(0, 10)  # heads far from their initialization
        net.head_w.normal_(0, 3)
        batch = {"encoder_cont": torch.randn(64, 6, 5) * 4, "decoder_known": torch.randn(64, 2, 2),
                 "static_cat": torch.randint(0, 3, (64, 2)) * torch.tensor([1, 0])}
        pred = net(batch)["pred"]
    reg = pred[:, 1, :]
    assert (reg[:, 0] <= reg[:, 1]).all() and (reg[:, 1] <= reg[:, 2]).all()
    legacy = _net(None)  # a checkpoint from before ordered quantiles: the free head
    legacy.load_state_dict(net.state_dict())
    with torch.no_grad():
        free = legacy(batch)["pred"]
    assert torch.equal(free[:, 0], pred[:, 0])  # the classification head is untouched
    assert torch.equal(free[:, 1, 1], pred[:, 1, 1]) and not torch.equal(free[:, 1], pred[:, 1])


def test_linear_skip_starts_as_the_plain_tft_and_adds_a_linear_map_of_the_decision_bar():
    torch.manual_seed(0)
    plain, skip = _net(1), _net(1, linear_skip=True)
    missing = skip.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing == ["skip_w"]
    batch = _batch()
    with torch.no_grad():
        assert torch.equal(plain(batch)["pred"], skip(batch)["pred"])  # zero at initialization
        skip.skip_w.normal_(0, 1)
        base = skip(batch)["pred"]
        moved = {**batch, "encoder_cont": batch["encoder_cont"].clone()}
        moved["encoder_cont"][:, -1, 2] += 1.0  # one input of the decision bar, one unit up
        shift = skip(moved)["pred"] - base
    # the classification logit moves by the body's response plus exactly the skip weight of that input
    with torch.no_grad():
        body = plain.__class__.forward  # the body alone: the same network without the skip
        skip_w, skip.skip_w = skip.skip_w, None
        body_shift = body(skip, moved)["pred"] - body(skip, batch)["pred"]
        skip.skip_w = skip_w
    assert torch.allclose(shift[:, 0, 0] - body_shift[:, 0, 0], skip_w[2, 0, 0].expand(64), atol=1e-5)


def test_interaction_skip_starts_at_the_linear_skip_and_adds_each_product_of_the_decision_bar():
    torch.manual_seed(0)
    lin, pairs = _net(1, linear_skip=True), _net(1, linear_skip=True, interaction_l2=2.0)
    assert pairs.load_state_dict(lin.state_dict(), strict=False).missing_keys == ["pair_w"]
    assert pairs.pair_w.shape == (10, 2, 3)  # 5 inputs: 10 pairs i < j
    batch = _batch()
    with torch.no_grad():
        assert torch.equal(lin(batch)["pred"], pairs(batch)["pred"])  # zero at initialization
        assert pairs.penalty().item() == 0.0 and lin.penalty().item() == 0.0
        k = _pair_index(pairs, 1, 3)
        pairs.pair_w[k, 0, 0] = 0.7
        last = batch["encoder_cont"][:, -1].clamp(-5, 5)
        expected = lin(batch)["pred"][:, 0, 0] + 0.7 * torch.tanh(last[:, 1] * last[:, 3])
        assert torch.allclose(pairs(batch)["pred"][:, 0, 0], expected, atol=1e-5)
        assert torch.isclose(pairs.penalty(), torch.tensor(2.0 * 0.7 ** 2))
        # weighted by the target's share of the training loss
        assert torch.isclose(pairs.penalty(torch.tensor([0.25, 0.75])), torch.tensor(0.25 * 2.0 * 0.7 ** 2))


def test_screened_pairs_skip_carries_only_those_products_without_a_penalty():
    torch.manual_seed(0)
    lin = _net(1, linear_skip=True)
    net = TFTNet(n_enc=5, n_dec=2, n_symbols=3, n_periods=1, n_targets=2, head_steps=[0, 1], hidden=8, heads=2,
                 lstm_layers=1, dropout=0.0, d_embed=4, n_quantiles=3, median_idx=1, regression=[False, True],
                 linear_skip=True, pairs=[(3, 4), (0, 2)])
    assert net.load_state_dict(lin.state_dict(), strict=False).missing_keys == ["pair_w"]
    assert net.pair_w.shape == (2, 2, 3) and net.pair_left.tolist() == [3, 0] and net.pair_right.tolist() == [4, 2]
    batch = _batch()
    with torch.no_grad():
        assert torch.equal(lin(batch)["pred"], net(batch)["pred"])  # zero at initialization
        net.pair_w[1, 0, 0] = -0.4
        last = batch["encoder_cont"][:, -1].clamp(-5, 5)
        expected = lin(batch)["pred"][:, 0, 0] - 0.4 * torch.tanh(last[:, 0] * last[:, 2])
        assert torch.allclose(net(batch)["pred"][:, 0, 0], expected, atol=1e-5)
        assert net.penalty().item() == 0.0  # a handful of screened pairs: weight decay only, as the main effects


def test_interaction_skip_learns_a_planted_product_that_the_linear_skip_cannot():
    """y = 1[x1 * x3 > 0] at the decision bar: the ridge-shrunk product map finds it, and the unused pairs stay
    near zero (the penalty)."""
    batch = _batch(512, seed=1)
    last = batch["encoder_cont"][:, -1]
    y = (last[:, 1] * last[:, 3] > 0).float()

    def fit(net):
        params = [p for p in (net.skip_w, net.pair_w, net.head_b) if p is not None]
        opt = torch.optim.Adam(params, lr=0.05)
        for _ in range(150):
            opt.zero_grad()
            logit = net._skip(last)[:, 0, 0] + net.head_b[0, 0]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y) + net.penalty()
            loss.backward()
            opt.step()
        return ((net._skip(last)[:, 0, 0] + net.head_b[0, 0] > 0).float() == y).float().mean()

    net = _net(None, linear_skip=True, interaction_l2=1e-3)
    acc = fit(net)
    w = net.pair_w[:, 0, 0].detach().abs()
    k = _pair_index(net, 1, 3)
    assert w[k] > 5 * torch.cat([w[:k], w[k + 1:]]).max()
    assert acc > 0.9
    assert fit(_net(None, linear_skip=True)) < 0.7  # the linear skip alone: near chance


def test_chunked_and_checkpointed_variable_selection_gives_the_same_outputs_and_gradients():
    """Chunks of time steps (always without gradients; recomputed in backward under activation checkpointing)
    change neither the outputs nor the gradients: the selection is per time step."""
    from models.tft_network import VectorizedVSN

    torch.manual_seed(0)
    # float64: only the summation order of the weight gradients differs, the math is the same
    vsn = VectorizedVSN(n_vars=5, d_embed=3, hidden=8, dropout=0.0, context_size=8).double().eval()
    x, ctx = torch.randn(6, 11, 5, dtype=torch.float64), torch.randn(6, 8, dtype=torch.float64)  # chunks 4, 4, 3

    def grads(chunk: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        vsn.zero_grad()
        vsn.chunk_steps = chunk
        out, weights = vsn(x, ctx)
        (out.pow(2).sum() + weights[..., 0].sum()).backward()
        return out.detach(), [p.grad.clone() for p in vsn.parameters()]

    plain, plain_grads = grads(0)
    chunked, chunked_grads = grads(VectorizedVSN.CHUNK_STEPS)
    torch.testing.assert_close(chunked, plain)
    for a, b in zip(chunked_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    vsn.INFERENCE_ELEMENTS = {"cpu": 6 * 5 * 16 * 3}  # 3 steps per chunk: chunks of 3, 3, 3, 2
    assert vsn._inference_steps(x) == 3
    with torch.no_grad():
        torch.testing.assert_close(vsn(x, ctx)[0], plain)  # inference runs in chunks too


def test_ensemble_outputs_are_the_members_mean_and_its_members_start_apart():
    torch.manual_seed(0)
    members = [_net(1, linear_skip=True, interaction_l2=0.5) for _ in range(3)]
    ens = TFTEnsemble(members)
    a, b = members[0].state_dict(), members[1].state_dict()
    assert not torch.equal(a["head_w"], b["head_w"])  # built one after the other: different initialisations
    batch = _batch()
    with torch.no_grad():
        for m in members:  # interactions away from their zero start, so the penalties differ
            m.pair_w.normal_(0, 1)
        out, own = ens(batch), [m(batch) for m in members]
        for key in ("pred", "encoder_weights", "decoder_weights", "static_weights", "attention"):
            torch.testing.assert_close(out[key], torch.stack([o[key] for o in own]).mean(0))
        assert torch.equal(out["member_pred"], torch.stack([o["pred"] for o in own]))
        reg = out["pred"][:, 1]
        assert (reg[:, 0] <= reg[:, 1]).all() and (reg[:, 1] <= reg[:, 2]).all()  # the mean of ordered quantiles
        torch.testing.assert_close(ens.penalty(), torch.stack([m.penalty() for m in members]).mean())
    assert ens.pair_w is members[0].pair_w
    with pytest.raises(ValueError, match="at least 2 members"):
        TFTEnsemble(members[:1])
