"""TensorRT engine building (``python engines/build_engine.py``, trtexec-style flags)."""
