"""The table of graphs (``nanosam2.contract.GRAPH_SPECS``) is the one place a graph is described: its
entries are consistent, and what the exporter, the planner and the runtime derive from it agrees with
the graphs an export writes."""

from __future__ import annotations

from pathlib import Path

from nanosam2 import contract as C


def test_every_entry_is_consistent():
    axes_by_input: dict[tuple[str, int], C.Axis] = {}
    for name, spec in C.GRAPH_SPECS.items():
        assert spec.name == name and len(set(spec.inputs)) == len(spec.inputs)
        assert set(spec.axes) <= set(spec.inputs), name
        assert callable(C.resolve(spec.module)) and callable(C.resolve(spec.examples))
        assert spec.flag.startswith("--") and spec.help and set(spec.tolerance) >= {"fp32"}
        for tensor in (*spec.inputs, *spec.outputs):  # each tensor carries its rank, dtype and role
            assert isinstance(tensor, C.Tensor) and tensor.rank >= 1 and tensor.role, (name, tensor)
            assert tensor.dtype in ("float32", "uint8", "int64"), (name, tensor)
        assert spec.file_name("fp16") == (f"{name}.onnx" if spec.fp32_only else f"{name}.fp16.onnx")
        for input_name, axes in spec.axes.items():
            for index, axis in axes.items():
                assert axis.lo <= min(axis.profile_for(1024)) and max(axis.profile_for(1024)) <= axis.hi, axis
                assert axes_by_input.setdefault((input_name, index), axis) == axis  # one meaning per input
    assert C.IMAGE_GRAPHS == (C.ENCODER, C.DECODER, C.PREPROCESS, C.POSTPROCESS)
    assert C.TRACKER_GRAPHS == (C.ENCODER, C.DECODER, C.MEMORY_ATTENTION, C.MEMORY_ENCODER)
    assert C.MAY_BE_EMPTY == (C.OBJECT_POINTER_OFFSETS, C.OBJECT_POINTER_PRESENT, C.OBJECT_POINTERS)


def test_an_export_and_its_engine_profiles_follow_the_table(runtime_onnx):
    import onnx

    from engines.plan import default_profile, read_onnx_info
    from export.exporter import graph_paths

    folder = Path(runtime_onnx[C.ENCODER]).parent
    assert {name: path.name for name, path in graph_paths(folder, "fp32", video=False).items()} == \
        {name: Path(runtime_onnx[name]).name for name in C.IMAGE_GRAPHS}
    for name in C.IMAGE_GRAPHS:
        spec = C.GRAPH_SPECS[name]
        model = onnx.load(str(runtime_onnx[name]), load_external_data=False)
        assert tuple(i.name for i in model.graph.input) == spec.inputs
        assert tuple(o.name for o in model.graph.output) == spec.outputs
        for tensor in model.graph.input:
            dims = tensor.type.tensor_type.shape.dim
            for index, axis in spec.axes.get(tensor.name, {}).items():
                assert dims[index].dim_param == axis.name, (name, tensor.name, index)
        info = read_onnx_info(runtime_onnx[name])
        for input_name, (lo, opt, hi) in default_profile(info).items():
            for index, axis in spec.axes.get(input_name, {}).items():
                want = axis.profile_for(info.contract.image_size)
                assert (lo[index], opt[index], hi[index]) == want, (name, input_name, index)


def test_a_new_graph_is_one_entry_its_flags_and_tensors_follow():
    """Issue 33: a graph added to the table (its tensors declared inline) is known to the contract's derived
    tables and becomes a flag of a command that runs it, with nothing else edited."""
    import argparse
    from dataclasses import replace

    from nanosam2.inference.factory import add_graph_arguments, graph_paths

    extra = C.Tensor("depth_map", 4, "[1,1,S/4,S/4] float32 depth of the frame", "float32")
    spec = replace(C.GRAPH_SPECS[C.MEMORY_ENCODER], name="depth_head", inputs=(C.IMAGE_EMBED,), outputs=(extra,),
                   axes={}, flag="--depth-head", help="a depth head graph")
    table = {**C.GRAPH_SPECS, spec.name: spec}
    derived = {t: t.role for s in table.values() for t in (*s.inputs, *s.outputs)}
    assert derived[extra] == "[1,1,S/4,S/4] float32 depth of the frame" and derived[C.IMAGE] == C.ROLES[C.IMAGE]
    original = dict(C.GRAPH_SPECS)
    C.GRAPH_SPECS[spec.name] = spec
    try:
        parser = argparse.ArgumentParser()
        add_graph_arguments(parser, (C.ENCODER, "depth_head"), required=(C.ENCODER,))
        args = parser.parse_args(["--encoder", "e.onnx", "--depth-head", "d.onnx"])
        assert graph_paths(args, (C.ENCODER, "depth_head")) == {C.ENCODER: "e.onnx", "depth_head": "d.onnx"}
        assert "a depth head graph" in parser.format_help()
    finally:
        C.GRAPH_SPECS.clear()
        C.GRAPH_SPECS.update(original)
