"""The shared U-Net skeleton and the whole-model re-parameterisation walk."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from restore.models.reparam import is_reparameterizable, reparameterize
from restore.models.unet import RestorationUNet, pad_to_multiple


class RecordingBlock(nn.Module):
    """A block that records what the skeleton passes it."""

    calls: list[dict] = []

    def __init__(self, dim: int, kernel_size: int = 3, drop_path: float = 0.0) -> None:
        super().__init__()
        RecordingBlock.calls.append({"dim": dim, "kernel_size": kernel_size, "drop_path": drop_path})
        self.conv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


@pytest.fixture(autouse=True)
def _reset_calls():
    RecordingBlock.calls = []


def test_kernel_sizes_widths_and_drop_path_per_level():
    RestorationUNet(RecordingBlock, width=4, enc_blocks=(1, 2), middle_blocks=1, kernel_sizes=(3, 5, 7),
                    drop_path_rate=0.2)
    enc, mid, dec = RecordingBlock.calls[:3], RecordingBlock.calls[3], RecordingBlock.calls[4:]
    assert [(c["dim"], c["kernel_size"]) for c in enc] == [(4, 3), (8, 5), (8, 5)]
    assert (mid["dim"], mid["kernel_size"]) == (16, 7)
    assert [(c["dim"], c["kernel_size"]) for c in dec] == [(8, 5), (8, 5), (4, 3)]
    assert mid["drop_path"] == pytest.approx(0.2) and enc[0]["drop_path"] == 0.0


def test_no_kernel_size_when_not_given():
    RestorationUNet(RecordingBlock, width=4, enc_blocks=(1,), middle_blocks=1)
    assert all(c["kernel_size"] == 3 for c in RecordingBlock.calls)


@pytest.mark.parametrize("skip", ["add", "concat"])
@pytest.mark.parametrize("size", [(17, 23), (8, 8), (3, 5)])
def test_any_input_size(skip, size):
    net = RestorationUNet(RecordingBlock, width=4, enc_blocks=(1, 1, 1), skip=skip).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        assert net(x).shape == x.shape


def test_global_residual_and_out_channels():
    net = RestorationUNet(RecordingBlock, in_channels=1, out_channels=3, width=4, enc_blocks=(1,),
                          global_residual=False)
    assert net(torch.randn(1, 1, 9, 9)).shape == (1, 3, 9, 9)
    with pytest.raises(ValueError, match="global_residual"):
        RestorationUNet(RecordingBlock, in_channels=1, out_channels=3)
    with pytest.raises(ValueError, match="kernel_sizes"):
        RestorationUNet(RecordingBlock, enc_blocks=(1, 1), kernel_sizes=(3, 3))


def test_channels_last_same_result():
    torch.manual_seed(0)
    net = RestorationUNet(RecordingBlock, width=4, enc_blocks=(1, 1)).eval()
    x = torch.randn(1, 3, 19, 14)
    with torch.no_grad():
        ref = net(x)
        net.channels_last = True
        out = net(x)
    assert out.is_contiguous()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_pad_to_multiple():
    x = torch.randn(1, 1, 5, 7)
    assert pad_to_multiple(x, 4).shape == (1, 1, 8, 8)
    assert pad_to_multiple(torch.randn(1, 1, 2, 2), 8).shape == (1, 1, 8, 8)  # replicate fallback


class Branchy(nn.Module):
    """A block whose reparameterize() replaces a child that has its own reparameterize()."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = Inner()
        self.calls = 0

    def forward(self, x):
        return self.inner(x)

    def reparameterize(self) -> None:
        self.calls += 1
        self.inner = nn.Identity()


class Inner(nn.Module):
    calls = 0

    def forward(self, x):
        return x

    def reparameterize(self) -> None:
        Inner.calls += 1


def test_reparameterize_walk_calls_outermost_once():
    Inner.calls = 0
    model = nn.Sequential(Branchy(), nn.Sequential(Branchy()))
    assert is_reparameterizable(model)
    out = reparameterize(model)
    assert out is model and not model.training
    assert [m.calls for m in model.modules() if isinstance(m, Branchy)] == [1, 1]
    assert Inner.calls == 0  # replaced by the outer block, never visited


def test_parts_compose_for_heads():
    """encode → (latent, skips); a second decoder from new_decoder() takes the same inputs (a residual
    decoder), and decode(return_levels=True) gives every level, deepest first."""
    torch.manual_seed(0)
    net = RestorationUNet(RecordingBlock, width=4, enc_blocks=(1, 2), middle_blocks=1).eval()
    x = torch.randn(1, 3, 16, 24)
    latent, skips = net.encode(x)
    assert latent.shape == (1, net.latent_channels, 4, 6) and [s.shape[1] for s in skips] == [4, 8]
    levels = net.decode(latent, skips, return_levels=True)
    assert [tuple(f.shape) for f in levels] == [(1, 8, 8, 12), (1, 4, 16, 24)]
    other = net.new_decoder()
    assert [tuple(f.shape) for f in other(latent, skips, return_levels=True)] == [tuple(f.shape) for f in levels]
    assert other is not net.decoder and not torch.equal(other.ups[0][0].weight, net.decoder.ups[0][0].weight)
    with pytest.raises(ValueError, match="2 levels but got 1 skips"):
        net.decode(latent, skips[:1])
