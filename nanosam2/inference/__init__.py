"""The runtime (torch-free): one ``Runner`` interface (``runner.py``) and every backend beside it -
``tensorrt_runner`` (with ``engine_stream``: one CUDA stream and its CUDA graphs per pipeline),
``onnxruntime_runner``, ``torch_runner`` - each importing its heavy dependency lazily; ``factory`` opens
them from files; ``Predictor`` (SAM2ImagePredictor's semantics), ``AutomaticMaskGenerator`` and
``VideoPredictor`` run over any of them. ``trt_runtime`` holds the commands and re-exports the public names.
"""
