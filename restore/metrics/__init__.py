"""Image-quality metrics under the two protocols users compare against."""

from restore.metrics.image_quality import ImageQualityMetrics, check_lpips_weights, rgb_to_y_bt601

__all__ = ["ImageQualityMetrics", "check_lpips_weights", "rgb_to_y_bt601"]
