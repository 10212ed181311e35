"""BaryIR heads and loss terms: the vectorised losses equal the official per-sample loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from restore.models.baryir import (
    BaryIRNet,
    KantorovichPotential,
    KantorovichPotentials,
    barycenter_distance,
    congruence_penalty,
    contrastive_loss,
    inverse_frequency_weights,
    orthogonality_loss,
)
from restore.models.nafnet import NAFBlock


def naive_orthogonality(z_b, z_r):
    """trainer_bary.py's loop: orth_i = Σ_j ⟨normalize(z_b,i), normalize(z_r,j)⟩²."""
    out = []
    for i in range(len(z_b)):
        zc = F.normalize(z_b[i].reshape(-1), dim=0)
        out.append(sum(torch.sum(zc * F.normalize(z_r[j].reshape(-1), dim=0)) ** 2 for j in range(len(z_r))))
    return torch.stack(out)


def naive_contrastive(z_r, ids, tau=0.07):
    """trainer_bary.py's loop: −log(pos / (pos + neg)), pos over j with the same id (j = i included)."""
    out = []
    for i in range(len(z_r)):
        zi = F.normalize(z_r[i].reshape(-1), dim=0)
        pos = neg = 0
        for j in range(len(z_r)):
            e = torch.exp(torch.sum(zi * F.normalize(z_r[j].reshape(-1), dim=0)) / tau)
            if ids[i] == ids[j]:
                pos = pos + e
            else:
                neg = neg + e
        out.append(-torch.log(pos / (pos + neg)))
    return torch.stack(out)


@pytest.mark.parametrize("seed", [0, 1])
def test_orthogonality_and_contrastive_equal_the_per_sample_reference(seed):
    g = torch.Generator().manual_seed(seed)
    z_b = torch.randn(6, 8, 3, 5, generator=g, dtype=torch.float64)
    # near-parallel residuals (else the sample's own e^{1/τ} swamps every other term), closer within a source
    ids = torch.tensor([0, 1, 0, 2, 1, 0])
    common = torch.randn(1, 8, 3, 5, generator=g, dtype=torch.float64)
    per_source = torch.randn(3, 8, 3, 5, generator=g, dtype=torch.float64)
    z_r = common + 0.05 * per_source[ids] + 0.02 * torch.randn(6, 8, 3, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(orthogonality_loss(z_b, z_r).double(), naive_orthogonality(z_b, z_r), rtol=1e-5,
                               atol=1e-6)
    con = contrastive_loss(z_r, ids, 0.07)
    torch.testing.assert_close(con.double(), naive_contrastive(z_r, ids), rtol=1e-4, atol=1e-5)
    assert con.min() >= 0 and con.max() > 0.1
    # RMS distance, per sample
    z_s = torch.randn_like(z_b)
    ref = torch.stack([((z_s[i] - z_b[i]) ** 2).mean().sqrt() for i in range(6)])
    torch.testing.assert_close(barycenter_distance(z_s, z_b).double(), ref, rtol=1e-5, atol=1e-6)


def test_one_source_per_batch_has_zero_contrastive_loss():
    z_r = torch.randn(4, 8, 2, 2)
    torch.testing.assert_close(contrastive_loss(z_r, torch.zeros(4, dtype=torch.long)), torch.zeros(4),
                               rtol=0, atol=1e-5)


def test_congruence_penalty_is_zero_exactly_when_weighted_potentials_sum_to_zero():
    lam = inverse_frequency_weights([3000, 1000, 2000])
    torch.testing.assert_close(lam.sum(), torch.tensor(1.0))
    assert lam[1] > lam[2] > lam[0]  # rarer source, larger weight
    f = torch.randn(5, 3)
    # make Σ_k λ_k f_k = 0 for each sample by solving for the last potential
    f[:, 2] = -(f[:, :2] @ lam[:2]) / lam[2]
    assert congruence_penalty(f, lam).item() == pytest.approx(0.0, abs=1e-10)
    f[0, 0] += 1.0
    assert congruence_penalty(f, lam).item() == pytest.approx((lam[0].item()) ** 2 / 5, rel=1e-5)
    with pytest.raises(ValueError, match="positive"):
        inverse_frequency_weights([10, 0])


@pytest.mark.parametrize("size", [(8, 8), (64, 64), (40, 72), (128, 96)])
def test_potentials_take_any_latent_size(size):
    potentials = KantorovichPotentials(num_potentials=3, channels=16)
    out = potentials(torch.randn(2, 16, *size))
    assert out.shape == (2, 3) and torch.isfinite(out).all()


def test_potentials_match_the_official_mlp_no_activation_between_the_first_two_linear_layers():
    """Official ``Potentials``: Linear → Linear → LeakyReLU → Linear; the first two compose to one affine map."""
    torch.manual_seed(0)
    official, leaky = KantorovichPotential(8, grid=2), KantorovichPotential(8, grid=2, first_activation=True)
    assert list(official.state_dict()) == list(leaky.state_dict())  # checkpoints of either load into either
    leaky.load_state_dict(official.state_dict())
    u, v = torch.randn(1, 8, 6, 6), torch.randn(1, 8, 6, 6)
    for potential, affine in ((official, True), (leaky, False)):
        first_two = potential.body[:5]  # pool, flatten, Linear, (activation), Linear
        mixed = first_two(0.3 * u + 0.7 * v)
        assert torch.allclose(mixed, 0.3 * first_two(u) + 0.7 * first_two(v), atol=1e-5) is affine
    assert not torch.allclose(official(u), leaky(u))


def tiny_net(**kw):
    torch.manual_seed(0)
    return BaryIRNet(NAFBlock, width=8, enc_blocks=(1, 1), middle_blocks=1, dec_blocks=(1, 1), **kw)


def test_forward_latents_matches_forward_and_splits_the_latent():
    net = tiny_net().eval()
    x = torch.rand(2, 3, 21, 30)
    with torch.no_grad():
        out, z_s, z_b, z_r = net.forward_latents(x)
        torch.testing.assert_close(out, net(x), rtol=0, atol=0)
    assert z_s.shape == z_b.shape == z_r.shape == (2, net.latent_channels, 6, 8)  # 21×30 padded to 24×32, /4
    torch.testing.assert_close(z_r, z_s - z_b)


def test_residual_decoder_features_reach_the_output():
    net = tiny_net().eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        for p in net.residual_decoder.parameters():
            p.add_(0.1 * torch.randn_like(p))
        before = net(x)
        net.residual_scale = 0.0
        assert not torch.allclose(net(x), before)
    with pytest.raises(ValueError, match="barycenter_blocks"):
        tiny_net(barycenter_blocks=0)
