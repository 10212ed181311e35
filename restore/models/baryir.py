"""BaryIR: Wasserstein-barycenter heads for all-in-one restoration, on any backbone of the toolkit.

Paper: Tang et al., "Learning Degradation-Agnostic Representations for All-in-One Image Restoration
via Wasserstein Barycenters" (BaryIR), TPAMI 2026. Official code: https://github.com/xl-tang3/BaryIR
(``model_bary.py``: ``BaryNet``, ``Potentials``; ``trainer_bary.py``: the two-player training).

The heads sit on the latent of :class:`restore.models.unet.RestorationUNet` (the paper's pipeline figure; the
official ``BaryNet.forward``)::

    z_s = LN(latent of encode(x))                 source embedding
    z_b = LN(barycenter_map(z_s))                 barycenter embedding (a stack of the backbone's blocks)
    z_r = z_s − z_b                               residual (degradation-specific) embedding
    r_1..r_L = residual_decoder(z_r)              a second decoder of the backbone's shape (new_decoder):
                                                  its upsampled feature at each resolution
    skip_l ← skip_l + 0.8 · r_l                   residual features added to the skips
    image = reconstruct(decoder(conv1×1([z_b; z_r]), skips), x)

:class:`BaryIRNet` is the backbone skeleton (same config keys as any ``configs/model/net`` file, plus
the head keys) with :meth:`BaryIRNet.decode` replaced by the heads; the encoder, decoder, intro and
outro are the skeleton's own parts (``encode`` / ``decode`` / ``reconstruct`` / ``new_decoder``),
never a copy. ``forward(x)`` returns the restored image, so :func:`restore.load_model` and
:func:`restore.restore_image` treat a BaryIR checkpoint like any other; :meth:`BaryIRNet.forward_latents`
also returns (z_s, z_b, z_r) for training.

The Kantorovich potentials (:class:`KantorovichPotentials`, one per source degradation) are only
needed to train the barycenter map (the paper's minimax over potentials of the weighted Wasserstein barycenter): they
live in
:class:`restore.lightning.baryir_module.BaryIRModule`, outside the inference network, so exported
networks carry no potential weights. The losses of both players are the functions at the end of
this module (vectorised over the batch; the official code loops over samples in Python).

Departures from the official code, each for a reason:

- Potentials are size-agnostic: adaptive average pooling to a ``grid``×``grid`` map → MLP → scalar
  (the official conv(4, stride 4) + Flatten ties them to 128² patches; ``grid=4`` gives the official
  feature count, C·4·4, at 128²).
- The residual decoder is ``new_decoder()`` of the backbone, run as the official residual path: no
  encoder skips, each level's upsampled feature added to the skip of its resolution, no blocks at
  full resolution (so its ``fuses`` and last level are dropped).
- The main decoder's input is a 1×1 conv of [z_b; z_r] (the official code applies a Transformer
  block then a 1×1 conv; a backbone-agnostic head keeps only the projection).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import nn

from restore.models.unet import BlockFactory, RestorationUNet, pad_to_multiple

__all__ = [
    "BaryIRNet",
    "KantorovichPotential",
    "KantorovichPotentials",
    "barycenter_distance",
    "orthogonality_loss",
    "contrastive_loss",
    "congruence_penalty",
    "inverse_frequency_weights",
]


class BaryIRNet(RestorationUNet):
    """A :class:`RestorationUNet` whose latent goes through BaryIR's barycenter heads.

    The arguments from ``block`` to ``channels_last`` are the backbone's (see :class:`RestorationUNet`);
    configs inherit them from a backbone's net config.

    Args:
        barycenter_blocks: blocks of the barycenter map z_s → z_b (the backbone's own block, at the
            latent width and the middle's kernel size). The official code uses as many as the
            latent stage (8 Transformer blocks); 1 keeps CPU models cheap.
        residual_scale: weight of the residual decoder's features added to the skips (0.8).

    Shapes: ``forward``: (B, C_in, H, W) → (B, C_out, H, W), any H and W.
    ``forward_latents``: also z_s, z_b, z_r, each (B, latent_channels, H'/2^L, W'/2^L) where H', W'
    are H, W padded to multiples of :attr:`size_multiple`.
    """

    def __init__(
        self,
        block: BlockFactory,
        in_channels: int = 3,
        out_channels: int | None = None,
        width: int = 16,
        enc_blocks: Sequence[int] = (1, 1, 1),
        middle_blocks: int = 1,
        dec_blocks: Sequence[int] | None = None,
        kernel_sizes: Sequence[int] | None = None,
        skip: str = "add",
        drop_path_rate: float = 0.0,
        global_residual: bool = True,
        channels_last: bool = False,
        barycenter_blocks: int = 1,
        residual_scale: float = 0.8,
    ) -> None:
        super().__init__(block, in_channels=in_channels, out_channels=out_channels, width=width,
                         enc_blocks=enc_blocks, middle_blocks=middle_blocks, dec_blocks=dec_blocks,
                         kernel_sizes=kernel_sizes, skip=skip, drop_path_rate=drop_path_rate,
                         global_residual=global_residual, channels_last=channels_last)
        if barycenter_blocks < 1:
            raise ValueError(f"barycenter_blocks must be >= 1, got {barycenter_blocks}")
        dim = self.latent_channels
        middle_kernel = kernel_sizes[-1] if kernel_sizes is not None else None
        # one LayerNorm for z_s and z_b, as the official BaryNet (its `LN`): the distances between
        # them are measured on the same scale
        self.latent_norm = LayerNorm2d(dim)
        extra = {} if middle_kernel is None else {"kernel_size": int(middle_kernel)}
        self.barycenter = nn.Sequential(*[block(dim=dim, drop_path=0.0, **extra) for _ in range(barycenter_blocks)])
        self.latent_fuse = nn.Conv2d(2 * dim, dim, 1)
        self.residual_decoder = self.new_decoder()
        # its upsampled features go to the skips (residual_features): nothing to fuse, and nothing
        # reads the full-resolution blocks' output
        self.residual_decoder.fuses = nn.ModuleList(nn.Identity() for _ in self.residual_decoder.fuses)
        self.residual_decoder.levels[-1] = nn.Identity()
        self.residual_scale = float(residual_scale)

    def split_latent(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Latent of :meth:`encode` → (z_s, z_b, z_r), each (B, latent_channels, h, w)."""
        z_s = self.latent_norm(latent)
        z_b = self.latent_norm(self.barycenter(z_s))
        return z_s, z_b, z_s - z_b

    def residual_features(self, z_r: torch.Tensor) -> list[torch.Tensor]:
        """z_r → the residual decoder's upsampled features, one per skip, full resolution first.

        As the official residual path: each level upsamples (the decoder's ``ups``), hands that
        feature to the skip of its resolution, and runs its blocks on it for the next level; with no
        encoder skip to fuse, ``fuses`` and the full-resolution blocks (whose output nothing reads)
        are removed at construction.
        """
        features, feat = [], z_r
        for up, level in zip(self.residual_decoder.ups, self.residual_decoder.levels):
            feat = up(feat)
            features.append(feat)
            feat = level(feat)
        return features[::-1]

    def decode_heads(self, latent: torch.Tensor, skips: Sequence[torch.Tensor], return_levels: bool = False
                     ) -> tuple[torch.Tensor | list[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """(latent, skips) → (decoder features as :meth:`decode`, z_s, z_b, z_r)."""
        z_s, z_b, z_r = self.split_latent(latent)
        skips = [s + self.residual_scale * r for s, r in zip(skips, self.residual_features(z_r))]
        features = self.decoder(self.latent_fuse(torch.cat([z_b, z_r], dim=1)), skips, return_levels=return_levels)
        return features, z_s, z_b, z_r

    def decode(self, latent: torch.Tensor, skips: Sequence[torch.Tensor],
               return_levels: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """(latent, skips) → full-resolution features through the barycenter heads (see the module docstring)."""
        return self.decode_heads(latent, skips, return_levels)[0]

    def forward_latents(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C_in, H, W) → (restored image (B, C_out, H, W), z_s, z_b, z_r), for training."""
        h, w = x.shape[-2:]
        inp = pad_to_multiple(x, self.size_multiple)
        if self.channels_last:
            inp = inp.contiguous(memory_format=torch.channels_last)
        latent, skips = self.encode(inp)
        features, z_s, z_b, z_r = self.decode_heads(latent, skips)
        out = self.reconstruct(features, inp)[..., :h, :w]
        return (out.contiguous() if self.channels_last else out), z_s, z_b, z_r


class KantorovichPotential(nn.Module):
    """One Kantorovich potential f_k: latent (B, C, h, w) of any size → (B,) scalars.

    Adaptive average pooling to ``grid``×``grid`` → MLP C·grid² → hidden → 64 → 1, as the official ``Potentials``:
    no activation between the first two Linear layers (they compose to one linear map of rank ≤ hidden), a
    LeakyReLU(0.2) before the last. The official conv(4, stride 4) + Flatten ties the potentials to 128² patches
    (C·4·4 features at 128²); pooling to the same grid gives the same feature count at any patch or image size,
    without that conv (a 3×3 conv there cost ≈ 10–15% of a tiny CPU model's training step).

    ``first_activation=True`` puts a LeakyReLU(0.2) between the first two Linear layers, as this toolkit did
    before it matched the official code (docs/methods/allinone.md measures the two); parameter names are the
    same either way (an ``nn.Identity`` holds the place), so checkpoints of both load into both.

    Args:
        channels: latent channels C.
        grid: side of the pooled map (4 = the official feature count at 128² patches).
        hidden: first MLP width; ``None`` = C·grid²/4 as the official code.
        first_activation: a LeakyReLU(0.2) after the first Linear layer (not in the official code).
    """

    def __init__(self, channels: int, grid: int = 4, hidden: int | None = None, first_activation: bool = False
                 ) -> None:
        super().__init__()
        features = channels * grid * grid
        hidden = hidden or max(1, features // 4)
        self.body = nn.Sequential(
            nn.AdaptiveAvgPool2d(grid),
            nn.Flatten(),
            nn.Linear(features, hidden),
            nn.LeakyReLU(0.2) if first_activation else nn.Identity(),
            nn.Linear(hidden, 64),
            nn.LeakyReLU(0.2),
            nn.Linear(64, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).squeeze(-1)


class KantorovichPotentials(nn.Module):
    """The K potentials of the K source degradations, evaluated together.

    Args:
        num_potentials: K, one per source degradation (training task).
        channels: latent channels of the network (``net.latent_channels``).
        grid: pooled grid size of each potential (see :class:`KantorovichPotential`).
        hidden: hidden width of each potential's MLP (see :class:`KantorovichPotential`).
        first_activation: a LeakyReLU between the first two Linear layers (see :class:`KantorovichPotential`).

    Shapes: (B, C, h, w) → (B, K): every potential on every sample (the congruence penalty needs all
    K; the generator and potential losses pick each sample's own with ``gather``).
    """

    def __init__(self, num_potentials: int, channels: int, grid: int = 4, hidden: int | None = None,
                 first_activation: bool = False) -> None:
        super().__init__()
        if num_potentials < 1:
            raise ValueError(f"num_potentials must be >= 1, got {num_potentials}")
        self.potentials = nn.ModuleList(KantorovichPotential(channels, grid, hidden, first_activation)
                                        for _ in range(num_potentials))

    def __len__(self) -> int:
        return len(self.potentials)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # a loop over the K potentials (K ≤ 5), each on the whole batch: no per-sample loop
        return torch.stack([f(z) for f in self.potentials], dim=1)


# -- the two players' loss terms (the official trainer_bary.py, ``train``) ---------------------
def _flat_unit(z: torch.Tensor) -> torch.Tensor:
    """(B, ...) → (B, D) rows L2-normalised, in float32 (stable under mixed precision)."""
    return F.normalize(z.float().flatten(1), dim=1)


def barycenter_distance(z_s: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """Per-sample RMS(z_s − z_b), (B,): the transport cost to the barycenter (``mse_loss`` officially)."""
    return (z_s.float() - z_b.float()).pow(2).flatten(1).mean(1).clamp_min(1e-12).sqrt()


def orthogonality_loss(z_b: torch.Tensor, z_r: torch.Tensor) -> torch.Tensor:
    """Per-sample Σ_j ⟨ẑ_b,i, ẑ_r,j⟩² over the batch, (B,): barycenter ⟂ residual subspaces."""
    gram = _flat_unit(z_b) @ _flat_unit(z_r).T  # (B, B): ⟨ẑ_b,i, ẑ_r,j⟩
    return gram.pow(2).sum(1)


def contrastive_loss(z_r: torch.Tensor, sources: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Per-sample InfoNCE on the residuals, (B,): −log(Σ_pos e^{s_ij/τ} / Σ_all e^{s_ij/τ}).

    s_ij = ⟨ẑ_r,i, ẑ_r,j⟩; positives are the samples of the same source degradation, the sample
    itself included, as in the official code. Computed with logsumexp in float32 (e^{1/0.07} ≈ 1.6e6
    overflows half precision).
    """
    unit = _flat_unit(z_r)
    logits = unit @ unit.T / temperature
    same = sources[:, None] == sources[None, :]
    positives = torch.logsumexp(logits.masked_fill(~same, float("-inf")), dim=1)
    return torch.logsumexp(logits, dim=1) - positives


def congruence_penalty(potentials: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """mean_i (Σ_k λ_k f_k(z_i))², scalar: zero when the weighted potentials sum to zero
    (the congruence constraint Σ_k λ_k f_k = 0 of the barycenter dual; ``potential_constraint`` officially).

    Args:
        potentials: (B, K) every potential on every sample.
        weights: (K,) source weights λ.
    """
    return (potentials.float() @ weights.float()).pow(2).mean()


def inverse_frequency_weights(counts: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Samples per source → λ_k ∝ 1 / count_k, normalised to sum to 1 (the official ``Lambda``)."""
    counts = torch.as_tensor(counts, dtype=torch.float32)
    if counts.dim() != 1 or (counts <= 0).any():
        raise ValueError(f"source sample counts must be positive, got {counts.tolist()}")
    inverse = 1.0 / counts
    return inverse / inverse.sum()
