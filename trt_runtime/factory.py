"""Kept for imports written before the runtime moved: the factory is ``nanosam2.inference.factory``."""

from nanosam2.inference.factory import (BackendOptions, add_backend_arguments, add_graph_arguments, find_graphs,
                                        graph_paths, load_predictor, load_video_predictor, open_pipeline, open_runner,
                                        options_from_args)

__all__ = ["BackendOptions", "add_backend_arguments", "add_graph_arguments", "find_graphs", "graph_paths",
           "load_predictor", "load_video_predictor", "open_pipeline", "open_runner", "options_from_args"]
