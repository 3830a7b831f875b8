"""Feature distillation of SAM2.1's image encoder into a small student (and its QAT).

``loss`` (the seed's three-level FPN loss), ``schedule`` (warmup + cosine), ``distributed``
(torchrun / DDP plumbing), ``train_log`` (CSV + TensorBoard), ``validation`` (COCO mIoU through
the runtime's predictor) and ``trainer`` (the loop, checkpoints, bit-exact resume).
"""
