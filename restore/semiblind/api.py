"""``deblur_semiblind``: restore one image given an inaccurate kernel (kernel refinement, then a prior).

Kernel refinement: :mod:`restore.semiblind.kernel_refinement`; priors: :mod:`restore.semiblind.plug_and_play`
(TV, learned denoiser) and :mod:`restore.semiblind.solver` (deep residual prior, Tang et al., CVPR 2023).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from restore.semiblind.kernel_refinement import KernelRefinementConfig, kernel_is_trusted
from restore.semiblind.kernel_refinement import refine_kernel as refine_kernel_fn  # the name the argument takes
from restore.semiblind.kernels import as_kernel
from restore.semiblind.operators import BlurOperator
from restore.semiblind.plug_and_play import hqs_deconvolution, load_denoiser
from restore.semiblind.solver import DeepResidualPrior, config_from
from restore.utils.image import from_tensor, to_tensor

__all__ = ["deblur_semiblind", "check_inputs", "PRIORS"]

log = logging.getLogger("restore.semiblind")


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


PRIORS = ("auto", "tv", "denoiser", "dip")


def _auto_prior(y: torch.Tensor, k: torch.Tensor, op: BlurOperator, kept: bool, refine_cfg: KernelRefinementConfig,
                kernel_state: str, **hqs_kwargs: Any) -> tuple[str, torch.Tensor]:
    """``prior="auto"``: the learned prior only pays with an accurate kernel, TV otherwise (README, semi-blind).

    The learned prior when y gives no sign that the kernel is wrong
    (:func:`~restore.semiblind.kernel_refinement.kernel_is_trusted`) and its image stays near TV's: a kernel
    error makes it fit the error into the image (artefacts TV does not make), so its image is dropped for TV's
    when ‖x_learned − x_TV‖ > ``trust_departure`` · ‖x_TV − y‖ on the observed frame (kept dev runs,
    kernels12, BSD400 128² and CBSD432 256²: exact kernels 0.25–0.76, wrong ones 0.70–1.96). Hand-written: a
    model-selection rule of this toolkit. Returns (the prior used, the latent image); the choice is logged.
    """
    x_tv = hqs_deconvolution(y, k, prior="tv", extended=True, **hqs_kwargs)
    chosen, x, why = "tv", x_tv, f"kernel {kernel_state}"
    if kernel_is_trusted(y, k, kept, refine_cfg):
        x_learned = hqs_deconvolution(y, k, prior="denoiser", extended=True, **hqs_kwargs)
        tv_image = op.crop_latent(x_tv)
        departure = float((op.crop_latent(x_learned) - tv_image).norm() / (tv_image - y).norm().clamp_min(1e-12))
        if departure <= refine_cfg.trust_departure:
            chosen, x = "denoiser", x_learned
        why += f"; the learned prior departs from TV by {departure:.2f} of TV's change to y"
    log.info("prior='auto': %s (%s)", chosen, why)
    return chosen, x


def deblur_semiblind(
    image: Any,
    kernel: Any,
    seed: int = 0,
    *,
    refine_kernel: bool = True,
    prior: str = "auto",
    preset: str = "fast",
    device: str | torch.device | None = None,
    gt: Any = None,
    return_kernel: bool = False,
    return_residual: bool = False,
    return_history: bool = False,
    refine: dict | None = None,
    **cfg: Any,
) -> Any:
    """Semi-blind deblurring of ``image`` with the inaccurate ``kernel``.

    Two stages, neither of which sees a ground truth:

    1. ``refine_kernel``: k̂ is a starting point — stretched or shortened along its motion by the factor of
       highest marginal likelihood and rotated by the maximum-likelihood angle, then refined on a support
       grown by a margin, tied to k̂, kept only if the marginal likelihood prefers it
       (:func:`~restore.semiblind.kernel_refinement.refine_kernel`);
    2. the image with the (refined) kernel and the chosen ``prior``: ``"auto"`` (the default: ``"denoiser"``
       when y gives no sign that the kernel is wrong, :func:`~restore.semiblind.kernel_refinement.kernel_is_trusted`,
       and its image stays near TV's; else ``"tv"``), ``"tv"`` (HQS with total variation, seconds),
       ``"denoiser"`` (DPIR-style plug-and-play with the model zoo's blind denoiser, tens of seconds; best with
       an accurate kernel, worse than TV under kernel error) or ``"dip"`` (the deep residual prior of Tang et
       al. 2023: DIP image net + residual net for what the kernel cannot explain; minutes).

    Args:
        image: blurry image — path, PIL image, numpy (H×W or H×W×C, uint8 or float in [0, 1]) or
            tensor ((C, H, W) or (1, C, H, W) in [0, 1]); gray or RGB.
        kernel: (kh, kw) array/tensor summing to 1, or a path (.png normalised to sum 1, .txt, .npy).
        seed: seeds the networks and their inputs (``prior="dip"``) or the injected noise (``"denoiser"``);
            bitwise-reproducible on CPU.
        refine_kernel: refine k̂ first (default) or use it as it is.
        prior: ``"auto"`` (default), ``"tv"``, ``"denoiser"`` or ``"dip"``; the choice of ``"auto"`` is logged
            (logger ``restore.semiblind``, INFO).
        preset: ``prior="dip"`` only: 'fast' (600 iterations) or 'paper' (the paper's networks, 2000 iterations).
        device: default: the input tensor's device, else CUDA when available, else CPU.
        gt: ground truth (same kinds as ``image``), only for the DIP PSNR history — never for stopping.
        return_kernel: also return the kernel used (refined or k̂), a float32 tensor (kh', kw') summing to 1.
        return_residual: also return the residual r ((1, C, H, W), signed; ``prior="dip"``, else y − k⊗x).
        return_history: also return the per-25-iteration DIP history (empty for the other priors).
        refine: overrides of :class:`~restore.semiblind.kernel_refinement.KernelRefinementConfig`.
        **cfg: overrides of :class:`~restore.semiblind.solver.DRPConfig` (``prior="dip"``) or keyword
            arguments of :func:`~restore.semiblind.plug_and_play.hqs_deconvolution` (the other priors).

    Returns:
        the restored image in the input's kind; with ``return_kernel``/``return_residual``/``return_history``
        a tuple (image, kernel?, residual?, history?).
    """
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    y, kind = to_tensor(image)
    k = as_kernel(kernel)
    g = to_tensor(gt, channels=y.shape[1])[0] if gt is not None else None
    check_inputs(y, k, g)
    if device is None:
        device = y.device if (isinstance(image, torch.Tensor) and image.is_cuda) else (
            "cuda" if torch.cuda.is_available() else "cpu")
    y = y.to(device)
    k = k.float().to(device)
    if prior in ("auto", "denoiser") and cfg.get("denoiser_path") is not None:
        load_denoiser(y.shape[1], cfg["denoiser_path"])  # a bad user file fails now, not after the refinement
    refine_cfg = KernelRefinementConfig(**(refine or {}))
    kept = True
    if refine_kernel:
        k, kept = refine_kernel_fn(y, k, refine_cfg, return_kept=True)
        if k.shape[0] > y.shape[-2] or k.shape[1] > y.shape[-1]:
            raise ValueError(f"refined kernel ({k.shape[0]}×{k.shape[1]}) is larger than the image "
                             f"({y.shape[-2]}×{y.shape[-1]}): pass refine={{'margin': 0}} or a larger image")
    history: list = []
    if prior == "dip":
        model = DeepResidualPrior(y, k, config_from(preset, **cfg), seed=seed)
        history = model.run(gt=g.to(device) if g is not None else None)
        restored, residual = model.estimate(), model.residual()
    else:
        op = BlurOperator(k, tuple(y.shape[-2:]))
        if prior == "auto":
            prior, x = _auto_prior(y, k, op, kept, refine_cfg, "kept by the refinement" if kept and refine_kernel
                                   else "changed or disputed by the refinement" if refine_kernel else "as given",
                                   **{"seed": seed, **cfg})
        else:
            x = hqs_deconvolution(y, k, prior=prior, extended=True, **{"seed": seed, **cfg})
        restored, residual = op.crop_latent(x), y - op(x)
    out = [from_tensor(restored, kind)]
    if return_kernel:
        out.append(k.detach().float().cpu())
    if return_residual:
        out.append(residual)
    if return_history:
        out.append(history)
    return out[0] if len(out) == 1 else tuple(out)
