"""Runtime commands (``python -m trt_runtime``: predict, everything, track, eval-coco, eval-vos, metrics)
and the demo; the runtime itself (runners for TensorRT, ONNX Runtime and PyTorch behind one interface,
the factory, ``Predictor``, ``AutomaticMaskGenerator``, ``VideoPredictor``) is ``nanosam2.inference``,
torch-free, and its public names are re-exported here.
"""

from nanosam2.inference.automatic import AutomaticMaskGenerator
from nanosam2.inference.factory import BackendOptions, find_graphs, load_predictor, load_video_predictor, open_runner
from nanosam2.inference.predictor import Predictor
from nanosam2.inference.video import VideoPredictor

__all__ = ["AutomaticMaskGenerator", "BackendOptions", "Predictor", "VideoPredictor", "find_graphs", "load_predictor",
           "load_video_predictor", "open_runner"]
