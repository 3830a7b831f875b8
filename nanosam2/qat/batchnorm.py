"""BatchNorm handling for QAT: fold what follows a conv, freeze the rest.

TensorRT folds every Conv->BatchNorm pair into the convolution before it quantizes weights,
so fake-quantizing the unfolded weights trains against numbers the engine never uses. Folding
first makes the per-channel weight scales the deployed ones; BatchNorms that follow no conv
(CAS-ViT's pre-norms and output norms) are frozen to their running statistics, which is what
inference uses too. Pairs are found by running the model once and watching which BatchNorm
consumes a conv's output unchanged, so any backbone works without a hand-written list.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

logger = logging.getLogger(__name__)


def find_conv_bn_pairs(module: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv name, batchnorm name) for every BatchNorm2d whose input is a Conv2d's untouched output."""
    names = {m: n for n, m in module.named_modules()}
    produced: dict[int, tuple[torch.Tensor, int, str]] = {}
    pairs: list[tuple[str, str]] = []
    consumers: dict[str, int] = {}

    def after_conv(conv, _inputs, output) -> None:
        produced[id(output)] = (output, output._version, names[conv])

    def before_bn(bn, inputs) -> None:
        record = produced.get(id(inputs[0]))
        if record is not None and record[0] is inputs[0] and record[1] == inputs[0]._version:
            pairs.append((record[2], names[bn]))

    def count_use(_m, inputs) -> None:  # how many modules read each conv output
        for tensor in inputs:
            record = produced.get(id(tensor))
            if record is not None and record[0] is tensor:
                consumers[record[2]] = consumers.get(record[2], 0) + 1

    handles = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(after_conv))
        if isinstance(m, nn.BatchNorm2d):
            handles.append(m.register_forward_pre_hook(before_bn))
        if not list(m.children()):
            handles.append(m.register_forward_pre_hook(count_use))
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(example)
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    # A conv whose output also feeds another module cannot absorb the BatchNorm.
    return [(c, b) for c, b in pairs if consumers.get(c, 0) == 1]


def fold_batchnorms(module: nn.Module, pairs: list[tuple[str, str]]) -> None:
    """Fold each BatchNorm into its conv (running statistics) and replace it by Identity."""
    for conv_name, bn_name in pairs:
        conv, bn = module.get_submodule(conv_name), module.get_submodule(bn_name)
        weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                            bn.weight, bn.bias)
        conv.weight, conv.bias = weight, bias
        parent_name, _, child = bn_name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, child, nn.Identity())
    logger.info("folded %d BatchNorm layers into their convolutions", len(pairs))


def fold_and_check(module: nn.Module, example: torch.Tensor, tolerance: float = 1e-4) -> list[tuple[str, str]]:
    """Find and fold the pairs, then check the eval-mode output did not change."""
    was_training = module.training
    module.eval()
    with torch.no_grad():
        before = _flatten(module(example))
    pairs = find_conv_bn_pairs(module, example)
    fold_batchnorms(module, pairs)
    with torch.no_grad():
        after = _flatten(module(example))
    module.train(was_training)
    error = max(float((a - b).abs().max() / b.abs().max().clamp_min(1.0)) for a, b in zip(after, before))
    if error > tolerance:
        raise RuntimeError(f"folding BatchNorm changed the output (relative error {error:.3g}); pairs: {pairs}")
    return pairs


def freeze_batchnorms(module: nn.Module) -> int:
    """Put every remaining BatchNorm in eval mode (running statistics, no updates); call after
    each ``.train()``. Their affine weights still train."""
    count = 0
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            count += 1
    return count


def _flatten(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        return [t for v in output.values() for t in _flatten(v)]
    if isinstance(output, (list, tuple)):
        return [t for v in output for t in _flatten(v)]
    return []
