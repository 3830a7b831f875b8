"""PyTorch modelling: student backbones and the trunk adapter that plugs them into SAM2."""

from nanosam2.modeling.student_trunk import StudentTrunk

__all__ = ["StudentTrunk"]
