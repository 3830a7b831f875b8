"""Runtime: one predictor over TensorRT, ONNX Runtime and PyTorch backends (torch-free core)."""
