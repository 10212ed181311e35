"""``deblur_semiblind``: restore one image given an inaccurate kernel (kernel refinement, then a prior).

Kernel refinement: :mod:`restore.semiblind.kernel_refinement`; priors: :mod:`restore.semiblind.plug_and_play`
(TV, learned denoiser) and :mod:`restore.semiblind.solver` (deep residual prior, Tang et al., CVPR 2023).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from restore.semiblind.configs import with_overrides
from restore.semiblind.hyper_laplacian import (
    HyperLaplacianConfig,
    estimate_noise_level,
    hyper_laplacian_deconvolution,
    weight_sensitivity,
    wraps_around,
)
from restore.semiblind.kernel_refinement import KernelRefinement, KernelRefinementConfig, kernel_is_trusted
from restore.semiblind.kernel_refinement import refine_kernel as refine_kernel_fn  # the name the argument takes
from restore.semiblind.kernels import as_kernel
from restore.semiblind.operators import BlurOperator, translate_image
from restore.semiblind.plug_and_play import (
    PnPConfig,
    TVConfig,
    load_denoiser,
    pnp_deconvolution,
    tv_deconvolution,
)
from restore.semiblind.solver import DeepResidualPrior, DRPConfig, config_from
from restore.utils.image import from_tensor, to_tensor

__all__ = ["deblur_semiblind", "check_inputs", "PRIORS", "SemiBlindResult", "SemiBlindLog"]

log = logging.getLogger("restore.semiblind")

PRIORS = ("auto", "tv", "denoiser", "dip", "hyper_laplacian")


@dataclass(frozen=True)
class SemiBlindLog:
    """How :func:`deblur_semiblind` made its image."""

    prior: str  # the prior that made the image: "tv", "denoiser", "dip" or "hyper_laplacian" ("auto" resolved)
    reason: str  # why that prior ("requested", or prior="auto"'s evidence)
    refinement: KernelRefinement | None  # what the kernel refinement did (None: refine_kernel=False)
    seconds: dict[str, float]  # wall time of "refine" and "restore"
    history: list[dict[str, float]] = field(default_factory=list)  # prior="dip": one record per 25 iterations
    noise_level: float | None = None  # σ of y given the kernel used
    # (:func:`~restore.semiblind.hyper_laplacian.estimate_noise_level`)


@dataclass(frozen=True)
class SemiBlindResult:
    """The one result of :func:`deblur_semiblind`, whatever the prior."""

    image: Any  # the restored image, in the input's kind (path/PIL → PIL, numpy → numpy, tensor → tensor)
    kernel: torch.Tensor  # the kernel used (refined or as given), float32 (kh', kw') on the CPU, sum 1; the image
    # sits in k̂'s frame, i.e. moved by ``log.refinement.translation`` from this kernel's where specks were cleared
    residual: torch.Tensor  # (1, C, H, W), signed: the residual net's r (prior="dip"), else y − valid(k⊗x)
    log: SemiBlindLog


def check_inputs(image: torch.Tensor, kernel: torch.Tensor, gt: torch.Tensor | None = None) -> None:
    """Validate y (1, C, H, W) and k̂ (kh, kw); raises ValueError naming the problem."""
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"image must be a single image (1, C, H, W), got shape {tuple(image.shape)}")
    c, h, w = image.shape[1:]
    if c not in (1, 3):
        raise ValueError(f"image must have 1 (gray) or 3 (RGB) channels, got {c}")
    if not torch.isfinite(image).all():
        raise ValueError("image contains NaN or Inf values")
    kh, kw = kernel.shape
    if kh > h or kw > w:
        raise ValueError(f"kernel ({kh}×{kw}) is larger than the image ({h}×{w})")
    if gt is not None and tuple(gt.shape) != tuple(image.shape):
        raise ValueError(f"ground truth shape {tuple(gt.shape)} differs from the image shape {tuple(image.shape)}")


def _auto_prior(y: torch.Tensor, op: BlurOperator, denoiser: nn.Module, trusted: bool, kernel_state: str,
                refine_cfg: KernelRefinementConfig, tv: TVConfig, pnp: PnPConfig, sigma: float,
                seed: int) -> tuple[str, torch.Tensor, str]:
    """``prior="auto"``: the learned prior only pays with an accurate kernel, TV otherwise.

    The learned prior when y gives no sign that the kernel is wrong (``trusted``,
    :func:`~restore.semiblind.kernel_refinement.kernel_is_trusted`) and its image stays near TV's: a kernel
    error makes it fit the error into the image (artefacts TV does not make), so its image is dropped for TV's
    when ‖x_learned − x_TV‖ > ``trust_departure`` · ‖x_TV − y‖ on the observed frame. Hand-written: a
    model-selection rule of this toolkit (thresholds set on BSD400 dev crops, ``docs/methods/semiblind.md``).
    Returns (the prior used, the latent image, why); the choice is logged.
    """
    x_tv = tv_deconvolution(y, op, tv, sigma)
    chosen, x, why = "tv", x_tv, f"kernel {kernel_state}"
    if trusted:
        x_learned = pnp_deconvolution(y, op, denoiser, pnp, sigma, seed)
        tv_image = op.crop_latent(x_tv)
        departure = float((op.crop_latent(x_learned) - tv_image).norm() / (tv_image - y).norm().clamp_min(1e-12))
        if departure <= refine_cfg.trust_departure:
            chosen, x = "denoiser", x_learned
        why += f"; the learned prior departs from TV by {departure:.2f} of TV's change to y"
    log.info("prior='auto': %s (%s)", chosen, why)
    return chosen, x, why


def deblur_semiblind(
    image: Any,
    kernel: Any,
    seed: int = 0,
    *,
    prior: str = "auto",
    refine_kernel: bool = True,
    refine: KernelRefinementConfig | Mapping[str, Any] | None = None,
    tv: TVConfig | Mapping[str, Any] | None = None,
    pnp: PnPConfig | Mapping[str, Any] | None = None,
    dip: DRPConfig | str | Mapping[str, Any] = "fast",
    hyper_laplacian: HyperLaplacianConfig | Mapping[str, Any] | None = None,
    denoiser: nn.Module | str | Path | None = None,
    device: str | torch.device | None = None,
    gt: Any = None,
) -> SemiBlindResult:
    """Semi-blind deblurring of ``image`` with the inaccurate ``kernel``.

    Two stages, neither of which sees a ground truth:

    1. ``refine_kernel``: k̂ is a starting point — rescaled along its motion by the factors of highest marginal
       likelihood and rotated by the maximum-likelihood angle, a Gaussian smear of highest marginal likelihood
       taken out of it (noise-free y), then refined on a support grown by a margin,
       tied to k̂, kept only if the marginal likelihood prefers it
       (:func:`~restore.semiblind.kernel_refinement.refine_kernel`);
    2. the image with the (refined) kernel and the chosen ``prior``: ``"auto"`` (the default:
       ``"hyper_laplacian"`` when y wraps around its border (a circular blur, for which the FFT model is exact;
       its weight follows y's noise level, read where the kernel leaves noise only, so a noise-free y is barely
       regularised — unless its solution follows λ, a sign that the kernel does not explain y
       (:func:`~restore.semiblind.hyper_laplacian.weight_sensitivity`), or k̂ carried specks (a raw estimate): then
       ``distrusted_weight``);
       else ``"denoiser"`` when y gives no sign that the kernel is wrong
       (:func:`~restore.semiblind.kernel_refinement.kernel_is_trusted`),
       and its image stays near TV's; else ``"tv"``), ``"tv"`` (HQS with total variation, seconds),
       ``"denoiser"`` (DPIR-style plug-and-play with a blind denoiser, tens of seconds; best with an accurate
       kernel, worse than TV under kernel error) or ``"dip"`` (the deep residual prior of Tang et al. 2023:
       DIP image net + residual net for what the kernel cannot explain; minutes) or ``"hyper_laplacian"``
       (Krishnan & Fergus 2009 by FFT, λ ∝ σ² of y, :mod:`restore.semiblind.hyper_laplacian`; a fraction of a second).

    Args:
        image: blurry image — path, PIL image, numpy (H×W or H×W×C, uint8 or float in [0, 1]) or
            tensor ((C, H, W) or (1, C, H, W) in [0, 1]); gray or RGB.
        kernel: (kh, kw) array/tensor summing to 1, or a path (.png normalised to sum 1, .txt, .npy).
        seed: seeds the networks and their inputs (``prior="dip"``) or the injected noise (``"denoiser"``);
            bitwise-reproducible on CPU.
        prior: ``"auto"`` (default), ``"tv"``, ``"denoiser"``, ``"dip"`` or ``"hyper_laplacian"``.
        refine_kernel: refine k̂ first (default) or use it as it is.
        refine: :class:`~restore.semiblind.kernel_refinement.KernelRefinementConfig`, or a dict of its fields.
        tv: :class:`~restore.semiblind.plug_and_play.TVConfig` (or a dict of its fields) of the TV prior.
        pnp: :class:`~restore.semiblind.plug_and_play.PnPConfig` (or a dict of its fields) of the learned prior.
        dip: ``prior="dip"``: a :class:`~restore.semiblind.solver.DRPConfig`, a preset (``"fast"``: 600
            iterations; ``"paper"``: the paper's networks, 2000 iterations) or a dict of overrides of ``"fast"``.
        hyper_laplacian: :class:`~restore.semiblind.hyper_laplacian.HyperLaplacianConfig` (or a dict of its fields).
        denoiser: the learned prior's network, or the path of a ``restore`` export or checkpoint to load (under
            the same trust rules); default: the model zoo's blind denoiser for y's channels.
        device: default: the input tensor's device, else CUDA when available, else CPU.
        gt: ground truth (same kinds as ``image``), only for the DIP PSNR history — never for stopping.

    Returns:
        :class:`SemiBlindResult` (image, kernel, residual, log), always.
    """
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    refine_cfg = with_overrides(KernelRefinementConfig(), refine)
    tv_cfg, pnp_cfg = with_overrides(TVConfig(), tv), with_overrides(PnPConfig(), pnp)
    hl_cfg = with_overrides(HyperLaplacianConfig(), hyper_laplacian)
    dip_cfg = config_from(dip) if isinstance(dip, (str, DRPConfig)) else with_overrides(config_from("fast"), dip)
    y, kind = to_tensor(image)
    k = as_kernel(kernel)
    g = to_tensor(gt, channels=y.shape[1])[0] if gt is not None else None
    check_inputs(y, k, g)
    if device is None:
        device = y.device if (isinstance(image, torch.Tensor) and image.is_cuda) else (
            "cuda" if torch.cuda.is_available() else "cpu")
    y = y.to(device)
    k = k.float().to(device)
    net = None
    periodic = wraps_around(y)
    # the hyper-Laplacian's boundary, resolved once (it also sets the padding of the residual)
    hl_periodic = hl_cfg.is_periodic(y, wraps=periodic)
    hl_cfg = replace(hl_cfg, boundary="periodic" if hl_periodic else "taper")
    if prior in ("auto", "denoiser"):  # loaded now: a bad user file fails before the refinement's seconds
        net = denoiser if isinstance(denoiser, nn.Module) else load_denoiser(y.shape[1], denoiser)[0]
    start = time.perf_counter()
    refinement = None
    if refine_kernel:
        refinement = refine_kernel_fn(y, k, refine_cfg)
        k = refinement.kernel
        if k.shape[0] > y.shape[-2] or k.shape[1] > y.shape[-1]:
            raise ValueError(f"refined kernel ({k.shape[0]}×{k.shape[1]}) is larger than the image "
                             f"({y.shape[-2]}×{y.shape[-1]}): pass refine={{'margin': 0}} or a larger image")
    refined = time.perf_counter()
    # σ read where the kernel leaves noise only: texture cannot inflate it, so a noise-free y is barely smoothed
    noise_level = estimate_noise_level(y, k)
    history: list[dict[str, float]] = []
    kept = refinement.kept if refinement is not None else True
    state = ("as given" if refinement is None else "kept by the refinement" if kept
             else "changed or disputed by the refinement")
    if prior == "auto" and periodic:
        # the FFT model is exact: the hyper-Laplacian, its weight raised where the kernel does not explain y
        reason = f"kernel {state}, y wraps around: FFT hyper-Laplacian, σ = {noise_level:.4f}"
        speckled = refinement is not None and refinement.despeckled > 0
        if speckled and hl_cfg.distrust_speckled and noise_level <= hl_cfg.speckled_max_noise:
            hl_cfg = replace(hl_cfg, weight=hl_cfg.distrusted_weight)
            reason += f"; k̂ carried specks (a raw estimate, its path noisy too), so weight {hl_cfg.weight:g}"
        elif noise_level <= hl_cfg.sensitivity_max_noise:  # noise-free: a kernel error shows as a λ-dependent solution
            sensitivity = weight_sensitivity(y, k, hl_cfg, noise_level)
            consistent = sensitivity <= hl_cfg.max_sensitivity
            hl_cfg = hl_cfg if consistent else replace(hl_cfg, weight=hl_cfg.distrusted_weight)
            reason += (f"; the solution moves by {sensitivity:.2f} of its change to y when λ triples, so weight "
                       f"{hl_cfg.weight:g}" + ("" if consistent else
                                               f" (above {hl_cfg.max_sensitivity:g}: the kernel does not explain y)"))
        else:
            reason += f", weight {hl_cfg.weight:g}"
        prior = "hyper_laplacian"
        log.info("prior='auto': %s (%s)", prior, reason)
    else:
        reason = "requested"
    if prior == "hyper_laplacian":
        op = BlurOperator(k, tuple(y.shape[-2:]))
        restored = hyper_laplacian_deconvolution(y, k, hl_cfg, noise_level)
        residual = y - op(op.pad_image(restored, mode="circular" if hl_periodic else "replicate"))
    elif prior == "dip":
        model = DeepResidualPrior(y, k, dip_cfg, seed=seed)
        history = model.run(gt=g.to(device) if g is not None else None)
        restored, residual = model.estimate(), model.residual()
    else:
        op = BlurOperator(k, tuple(y.shape[-2:]))
        # TV and the learned prior scale their weight by the kernel-free estimate, which counts some texture as
        # noise (their settings were chosen with it); the hyper-Laplacian takes the kernel-aware noise_level
        sigma = estimate_noise_level(y)
        if prior == "auto":
            trusted = kernel_is_trusted(y, k, kept, refine_cfg)
            prior, x, reason = _auto_prior(y, op, net, trusted, state, refine_cfg, tv_cfg, pnp_cfg, sigma, seed)
        elif prior == "tv":
            x = tv_deconvolution(y, op, tv_cfg, sigma)
        else:
            x = pnp_deconvolution(y, op, net, pnp_cfg, sigma, seed)
        restored, residual = op.crop_latent(x), y - op(x)
    if refinement is not None and max(map(abs, refinement.translation)) > 1e-3:
        # the kernel is centred as the despeckled k̂: the clearing's shift moves the image into k̂'s frame (the
        # residual stays the kernel's); circular for the FFT model of a wrapping y, mirrored otherwise
        restored = translate_image(restored, refinement.translation,
                                   circular=prior == "hyper_laplacian" and hl_periodic).clamp(0, 1)
    seconds = {"refine": refined - start, "restore": time.perf_counter() - refined}
    return SemiBlindResult(from_tensor(restored, kind), k.detach().float().cpu(), residual,
                           SemiBlindLog(prior, reason, refinement, seconds, history, noise_level))
