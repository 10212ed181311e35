"""Parameter / MAC counts and the summary command line."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from restore.models.convnext import ConvNeXtBlock
from restore.models.factory import list_architectures
from restore.models.nafnet import NAFBlock
from restore.models.summary import count_macs, main, summarize
from restore.models.unet import RestorationUNet
from restore.models.unireplknet import UniRepLKNetBlock


def test_macs_of_known_layers():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_macs(conv, (2, 3, 10, 12)) == 2 * 8 * 3 * 9 * 10 * 12
    dw = nn.Conv2d(8, 8, 7, padding=3, groups=8)
    assert count_macs(dw, (1, 8, 16, 16)) == 8 * 49 * 16 * 16
    assert count_macs(nn.Linear(5, 7), (4, 5)) == 4 * 5 * 7


@pytest.mark.parametrize("block", [NAFBlock, ConvNeXtBlock, UniRepLKNetBlock])
def test_summarize_counts_every_parameter(block):
    net = RestorationUNet(block, width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1),
                          **({"kernel_sizes": (7, 9, 11)} if block is not NAFBlock else {}))
    s = summarize(net, (1, 3, 32, 32))
    assert s["params"] == sum(p.numel() for p in net.parameters())
    assert s["macs"] > 0 and s["gmacs"] == s["macs"] / 1e9
    if block is NAFBlock:
        assert "params_deploy" not in s
    else:
        assert s["params_deploy"] < s["params"] and s["macs_deploy"] <= s["macs"]
    assert net.training  # the net itself is left untouched


def test_deploy_counts_match_a_deploy_built_net():
    kw = dict(width=8, enc_blocks=(1,), middle_blocks=1, kernel_sizes=(7, 13))
    s = summarize(RestorationUNet(UniRepLKNetBlock, **kw), (1, 3, 32, 32))
    d = summarize(RestorationUNet(partial(UniRepLKNetBlock, deploy=True), **kw), (1, 3, 32, 32))
    assert d["params"] == s["params_deploy"] and d["macs"] == s["macs_deploy"]
    assert "params_deploy" not in d


def test_cli_one_net_and_all(capsys):
    rows = main(["model/net=unireplknet_tiny", "input_size=64", "width=8"])
    assert rows[0]["name"] == "unireplknet_tiny" and rows[0]["input_size"] == (1, 3, 64, 64)
    assert "unireplknet_tiny" in capsys.readouterr().out
    rows = main(["--all", "input_size=32x48"])
    assert [r["name"] for r in rows] == list_architectures()
    assert {"unireplknet_tiny", "inceptionnext_base", "convnext_tiny"} <= set(list_architectures())
    with pytest.raises(SystemExit):
        main([])


def test_meta_counting_needs_no_real_compute():
    with torch.device("meta"):
        net = RestorationUNet(UniRepLKNetBlock, width=48, enc_blocks=(2, 2, 4), middle_blocks=6,
                              kernel_sizes=(7, 9, 13, 13))
    s = summarize(net, (1, 3, 512, 512))
    assert s["params"] > 10_000_000 and s["gmacs"] > 100
