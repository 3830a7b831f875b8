"""Graph-level inference shared by training's validation and the deployment runtime.

``Predictor`` gives SAM2ImagePredictor's semantics over any two runners (one per exported
graph); ``TorchRunner`` runs those graphs in PyTorch. ``trt_runtime`` adds TensorRT and ONNX
Runtime runners behind the same interface. Importing this package needs no torch.
"""
