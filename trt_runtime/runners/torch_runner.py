"""The PyTorch backend (defined in ``nanosam2.inference``, re-exported here)."""

from nanosam2.inference.torch_runner import DTYPES, TorchRunner

__all__ = ["DTYPES", "TorchRunner"]
