"""Errors that the command-line tools turn into a one-line message and a non-zero exit."""


class NanoSam2Error(Exception):
    """Bad input or environment that the user can fix; the message says how."""


class CheckpointError(NanoSam2Error):
    """A checkpoint file is missing, not a checkpoint, or does not fit the model."""


class MissingDependencyError(NanoSam2Error, ImportError):
    """An optional heavy dependency (torch, onnxruntime, tensorrt, ...) is not installed."""
