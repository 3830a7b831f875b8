"""Quantization-aware training of a distilled student, in the form TensorRT consumes.

``batchnorm`` folds each Conv->BatchNorm pair and freezes the BatchNorms that follow no conv;
``modelopt_int8`` inserts NVIDIA TensorRT Model Optimizer's INT8 fake quantizers (symmetric,
per-channel weights, per-tensor activations), calibrates them and saves/restores their state;
``python -m nanosam2.train --qat`` runs the distillation loop on the quantized student.
"""
