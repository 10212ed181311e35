"""Prunable-weight selection, the 0.8^r schedule, rewinding and masks under optimisers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from restore.models.nafnet import NAFBlock
from restore.models.unet import RestorationUNet
from restore.models.unireplknet import UniRepLKNetBlock
from restore.pruning import (
    count_parameters,
    dense_state_dict,
    get_masks,
    load_dense_state,
    make_permanent,
    prune_round,
    select_prunable,
    target_remaining,
)


def tiny_nafnet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return RestorationUNet(NAFBlock, width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1))


def tiny_unireplk(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return RestorationUNet(UniRepLKNetBlock, width=8, enc_blocks=(1,), middle_blocks=1, dec_blocks=(1,),
                          kernel_sizes=(7, 9))


def test_default_selection_is_conv_and_linear_weights_only():
    net = tiny_unireplk()
    names = {w.name for w in select_prunable(net)}
    expected = {f"{m}.weight" for m, mod in net.named_modules() if isinstance(mod, (nn.Conv2d, nn.Linear))}
    assert names == expected
    # norm gains, biases, BN statistics, GRN and layer scales are not prunable
    assert not any(n.endswith(("bias", "gamma", "beta")) or "bn" in n or "norm" in n or "grn" in n for n in names)


def test_include_exclude_patterns_and_clear_error():
    net = tiny_nafnet()
    names = [w.name for w in select_prunable(net, include=["encoder.*"], exclude=["*.sca.*"])]
    assert names and all(n.startswith("encoder.") and ".sca." not in n for n in names)
    with pytest.raises(ValueError, match="no prunable weights.*include=\\['nothing.*'\\]"):
        select_prunable(net, include=["nothing.*"])
    with pytest.raises(ValueError, match="not a torch.nn layer class"):
        select_prunable(net, layer_types=["Conv2D"])


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_remaining_fraction_follows_schedule(scope):
    net = tiny_nafnet()
    weights = select_prunable(net)
    n0 = {w.name: w.numel for w in weights}
    total0 = sum(n0.values())
    for r in (1, 2, 3):
        prune_round(weights, r, rate=0.2, scope=scope)
        masks = get_masks(weights)
        if scope == "layer":
            for name, m in masks.items():
                assert abs(int(m.sum()) - n0[name] * 0.8**r) <= 1, name
        remaining = sum(int(m.sum()) for m in masks.values())
        assert abs(remaining - total0 * 0.8**r) <= len(weights)
        assert count_parameters(net, weights)["fraction_prunable"] == pytest.approx(0.8**r, abs=len(weights) / total0)


def test_global_magnitude_removes_the_smallest_and_overrides_have_their_own_rate():
    net = tiny_nafnet()
    weights = select_prunable(net)
    prune_round(weights, 1, rate=0.2, rate_overrides={"outro.weight": 0.1})
    outro = next(w for w in weights if w.name == "outro.weight")
    assert int(outro.mask.sum()) == target_remaining(outro.numel, 0.1, 1)
    others = [w for w in weights if w is not outro]
    kept = torch.cat([w.raw[w.mask.bool()].abs().flatten() for w in others])
    theta = {k: v for k, v in dense_state_dict(tiny_nafnet()).items()}  # same seed: the unpruned values
    dropped = torch.cat([theta[w.name][~w.mask.bool()].abs().flatten() for w in others])
    assert dropped.max() <= kept.min()  # one global threshold
    assert int(sum(w.mask.sum() for w in others)) == target_remaining(sum(w.numel for w in others), 0.2, 1)


def test_random_pruning_is_seeded_and_differs_from_magnitude():
    masks = []
    for method, seed in (("random", 0), ("random", 0), ("random", 1), ("magnitude", 0)):
        weights = select_prunable(tiny_nafnet())
        prune_round(weights, 1, method=method, seed=seed)
        masks.append(torch.cat([m.flatten() for m in get_masks(weights).values()]))
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])
    assert not torch.equal(masks[0], masks[3]) and masks[0].sum() == masks[3].sum()


def test_excluded_parameters_are_never_masked():
    net = tiny_nafnet()
    weights = select_prunable(net, exclude=["intro.weight", "outro.weight"])
    for r in (1, 2):
        prune_round(weights, r)
    assert not hasattr(net.intro, "weight_mask") and not hasattr(net.outro, "weight_mask")
    assert all(not n.endswith("_mask") for n, _ in net.named_buffers() if n.startswith(("intro", "outro")))
    assert not any(k.endswith("_mask") and ("norm" in k or "beta" in k or "gamma" in k) for k in net.state_dict())
    assert bool((net.intro.weight != 0).all())


def test_rewinding_restores_theta0_on_survivors_and_zero_elsewhere():
    net = tiny_nafnet()
    theta0 = {k: v.clone() for k, v in dense_state_dict(net).items()}
    weights = select_prunable(net)
    with torch.no_grad():  # "training"
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    prune_round(weights, 1)
    load_dense_state(net, theta0)
    for w in weights:
        mask = w.mask.bool()
        assert torch.equal(w.effective()[mask], theta0[w.name][mask])
        assert bool((w.effective()[~mask] == 0).all()) and bool((w.raw[~mask] == 0).all())
        assert torch.equal(getattr(w.module, "weight")[mask], theta0[w.name][mask])  # what forward uses
    state = dense_state_dict(net)
    for k, v in theta0.items():  # biases, norms and everything else: θ₀ as well
        if k not in {w.name for w in weights}:
            assert torch.equal(state[k], v), k
    assert set(state) == set(theta0)


@pytest.mark.parametrize("optimizer", ["sgd_momentum_wd", "adamw"])
def test_pruned_weights_stay_zero_through_training(optimizer):
    net = tiny_nafnet()
    weights = select_prunable(net)
    prune_round(weights, 1)
    prune_round(weights, 2)
    if optimizer == "adamw":
        opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.1)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.9, weight_decay=0.1, nesterov=True)
    x = torch.rand(2, 3, 16, 16)
    for _ in range(5):
        opt.zero_grad()
        (net(x) - x.flip(-1)).abs().mean().backward()
        opt.step()
    moved = 0
    for w in weights:
        mask = w.mask.bool()
        assert bool((net.get_submodule(w.name.rsplit(".", 1)[0]).weight[~mask] == 0).all())
        assert bool((w.raw[~mask] == 0).all()), f"{w.name}: raw pruned values revived by {optimizer}"
        moved += int((w.raw[mask] != 0).sum())
    assert moved > 0


def test_dense_state_dict_and_make_permanent_keep_outputs():
    net = tiny_nafnet().eval()
    reference = tiny_nafnet()
    weights = select_prunable(net)
    prune_round(weights, 1)
    prune_round(weights, 2)
    x = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        out = net(x)
        reference.load_state_dict(dense_state_dict(net))
        assert torch.equal(reference.eval()(x), out)
        make_permanent(net)
        assert set(net.state_dict()) == set(reference.state_dict())
        assert torch.equal(net(x), out)


def test_global_pruning_can_empty_a_layer_and_overrides_prevent_it():
    net = tiny_nafnet()
    with torch.no_grad():
        net.outro.weight.mul_(1e-3)  # the smallest weights of the network
    weights = select_prunable(net)
    prune_round(weights, 8)
    assert int(net.outro.weight_mask.sum()) == 0  # collapsed under one global threshold
    net = tiny_nafnet()
    with torch.no_grad():
        net.outro.weight.mul_(1e-3)
    weights = select_prunable(net)
    prune_round(weights, 8, rate_overrides={"outro.weight": 0.1})
    assert int(net.outro.weight_mask.sum()) == target_remaining(net.outro.weight_mask.numel(), 0.1, 8)
