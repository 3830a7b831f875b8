"""The backend-independent ``Predictor`` (defined in ``nanosam2.inference``, re-exported here)."""

from nanosam2.inference.predictor import ImageState, Prediction, Predictor, as_rgb_array

__all__ = ["ImageState", "Prediction", "Predictor", "as_rgb_array"]
