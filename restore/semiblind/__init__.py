"""Semi-blind deblurring with a deep residual prior (Tang et al., CVPR 2023, "Uncertainty-aware
unfolding with deep residual prior"; official code: github.com/xl-tang3/UAUDeblur).

y = k̂ ⊗ x + r + s + n with an inaccurate kernel k̂: x from an untrained DIP generator (TV prior),
r from an untrained residual generator (ℓ1 prior), s sparse outliers (closed-form soft threshold).

    from restore.semiblind import deblur_semiblind, perturb_kernel, load_kernel
    k_hat = perturb_kernel(load_kernel("k.txt"), angle=30)
    sharp, r = deblur_semiblind("blurry.png", k_hat, seed=0, return_residual=True)
"""

from restore.semiblind.api import check_inputs, deblur_semiblind
from restore.semiblind.baselines import edge_taper, richardson_lucy, wiener_deconvolution
from restore.semiblind.kernels import (as_kernel, disk_kernel, gaussian_kernel, kernel_length, line_motion_kernel,
                                       load_kernel, perturb_kernel)
from restore.semiblind.operators import BlurOperator
from restore.semiblind.solver import FAST, PAPER, DeepResidualPrior, DRPConfig, config_from

__all__ = [
    "deblur_semiblind", "check_inputs", "DeepResidualPrior", "DRPConfig", "PAPER", "FAST", "config_from",
    "BlurOperator", "wiener_deconvolution", "richardson_lucy", "edge_taper",
    "load_kernel", "as_kernel", "perturb_kernel", "line_motion_kernel", "gaussian_kernel", "disk_kernel",
    "kernel_length",
]
