"""ONNX export of nanosam2 students and SAM2.1 teachers (``python -m export.onnx``)."""
