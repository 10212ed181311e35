"""Semi-blind deblurring: restore an image given an *inaccurate* kernel k̂.

1. kernel refinement (:mod:`.kernel_refinement`): k̂'s length (marginal likelihood under a Gaussian
   image prior) and rotation (maximum likelihood), then a free-form refinement on a grown support
   tied to k̂ (softmax kernel, as SelfDeblur), kept only if the marginal likelihood prefers it;
2. the image with the refined kernel and a prior: TV or the model zoo's blind denoiser (driven at each
   level by injected noise) in half-quadratic splitting (:mod:`.plug_and_play`, DPIR-style) — by default
   ``"auto"``: the hyper-Laplacian prior by FFT (:mod:`.hyper_laplacian`, weight set by y's noise level, raised
   where its solution follows λ) when y wraps around its border, else the learned prior when y gives no sign that
   the kernel is wrong (:func:`.kernel_refinement.kernel_is_trusted`), else TV — or the deep residual prior
   (:mod:`.solver`; Tang et al., CVPR 2023, official code github.com/xl-tang3/UAUDeblur):
   y = k ⊗ x + r + s + n, x from an untrained DIP generator, r from an untrained residual
   generator for what the kernel cannot explain, s sparse outliers.

    from restore.semiblind import deblur_semiblind, perturb_kernel, load_kernel
    k_hat = perturb_kernel(load_kernel("k.txt"), angle=30)
    result = deblur_semiblind("blurry.png", k_hat)   # .image, .kernel, .residual, .log
"""

from restore.data.kernels import gaussian_kernel, load_kernel
from restore.semiblind.api import PRIORS, SemiBlindLog, SemiBlindResult, check_inputs, deblur_semiblind
from restore.semiblind.baselines import edge_taper, richardson_lucy, wiener_deconvolution
from restore.semiblind.hyper_laplacian import (
    HyperLaplacianConfig,
    estimate_noise_level,
    hyper_laplacian_deconvolution,
    periodic_component,
    weight_sensitivity,
    wraps_around,
)
from restore.semiblind.kernel_refinement import (
    KernelRefinement,
    KernelRefinementConfig,
    kernel_is_trusted,
    refine_kernel,
    search_rotation,
    search_scale,
    search_smear,
)
from restore.semiblind.kernels import (
    as_kernel,
    despeckle_kernel,
    disk_kernel,
    kernel_length,
    line_motion_kernel,
    perturb_kernel,
    rotate_kernel,
    unsmear_kernel,
)
from restore.semiblind.operators import BlurOperator, translate_image
from restore.semiblind.plug_and_play import (
    PnPConfig,
    TVConfig,
    estimate_noise_sigma,
    load_denoiser,
    pnp_deconvolution,
    tv_deconvolution,
)
from restore.semiblind.solver import FAST, PAPER, DeepResidualPrior, DRPConfig, config_from

__all__ = [
    "deblur_semiblind", "SemiBlindResult", "SemiBlindLog", "check_inputs", "PRIORS",
    "refine_kernel", "search_scale", "search_rotation", "search_smear", "KernelRefinementConfig", "KernelRefinement",
    "kernel_is_trusted",
    "hyper_laplacian_deconvolution", "HyperLaplacianConfig", "estimate_noise_level", "periodic_component",
    "weight_sensitivity", "wraps_around",
    "tv_deconvolution", "pnp_deconvolution", "TVConfig", "PnPConfig", "estimate_noise_sigma", "load_denoiser",
    "DeepResidualPrior", "DRPConfig", "PAPER", "FAST", "config_from",
    "BlurOperator", "translate_image", "wiener_deconvolution", "richardson_lucy", "edge_taper",
    "load_kernel", "as_kernel", "perturb_kernel", "rotate_kernel", "line_motion_kernel", "gaussian_kernel",
    "disk_kernel", "kernel_length", "unsmear_kernel", "despeckle_kernel",
]
