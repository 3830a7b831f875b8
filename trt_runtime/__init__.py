"""Runtime: one predictor over TensorRT, ONNX Runtime and PyTorch backends (torch-free core).

``Predictor`` segments with prompts, ``AutomaticMaskGenerator`` segments everything; runners and
predictors are opened with ``trt_runtime.factory.load_predictor``.
"""

from nanosam2.inference.automatic import AutomaticMaskGenerator
from nanosam2.inference.predictor import Predictor

__all__ = ["AutomaticMaskGenerator", "Predictor"]
