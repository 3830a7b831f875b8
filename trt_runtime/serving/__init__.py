"""Serving nanosam2 on Triton Inference Server (PyTriton): ``protocol`` (the models and tensors), ``server``
(the serving logic and its binding), ``client`` (the remote predictors behind ``--server``), ``stub_env``
(numpy < 2 for Triton's Python-backend stub only) and ``command`` (``python -m trt_runtime serve``)."""
