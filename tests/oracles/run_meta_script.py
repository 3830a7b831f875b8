"""Run one of Meta's scripts (``sys.argv[2:]``: the script and its own arguments) as Meta runs it, on the CPU
and with SAM2.1 at the image size ``sys.argv[1]`` (the two things this machine and the test's model need;
see README.md). The script's own argument parsing, protocol and writing are untouched."""

import runpy
import sys

import sam2.build_sam as build_sam

image_size, script, *arguments = sys.argv[1:]
meta_builder = build_sam.build_sam2_video_predictor


def on_this_machine(*args, hydra_overrides_extra=(), **kwargs):
    kwargs["device"] = "cpu"
    return meta_builder(*args, hydra_overrides_extra=[*hydra_overrides_extra, f"++model.image_size={image_size}"],
                        **kwargs)


build_sam.build_sam2_video_predictor = on_this_machine  # the script imports it by name when it runs
sys.argv = [script, *arguments]
runpy.run_path(script, run_name="__main__")
