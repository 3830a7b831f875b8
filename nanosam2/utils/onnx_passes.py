"""Passes over an exported ONNX model: metadata, simplification, FP16 conversion, checks."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx

from nanosam2.contract import MEMORY_ATTENTION, METADATA_KEY, GraphContract
from nanosam2.errors import NanoSam2Error

logger = logging.getLogger(__name__)

# Kept in FP32 in FP16 graphs: normalisation statistics (overflow in x^2 and variance),
# and the Fourier features of point prompts (angles up to ~20 rad lose 1e-2 in FP16).
FP16_KEEP_FP32_OPS = ["LayerNormalization", "ReduceMean", "Pow", "Sqrt", "Sin", "Cos"]
TWO_GIB = 2**31


def set_metadata(model: onnx.ModelProto, contract: GraphContract) -> onnx.ModelProto:
    """Store the contract under ``metadata_props['nanosam2']`` (replacing an older one)."""
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in kept}, METADATA_KEY: contract.to_json()})
    model.producer_name = "nanosam2"
    return model


def load_onnx(path: str | Path) -> onnx.ModelProto:
    """The graph of an ONNX file without its external weights; one-line errors for a missing file
    or one that is not ONNX."""
    if not Path(path).is_file():
        raise NanoSam2Error(f"no such ONNX file: {path}")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        text = str(exc).strip()
        raise NanoSam2Error(f"{path} is not an ONNX model: {text.splitlines()[0] if text else type(exc).__name__}") from None


def read_metadata(path: str | Path) -> GraphContract:
    """The contract of an ONNX file (graph structure is not loaded)."""
    model = load_onnx(path)
    return GraphContract.from_metadata({p.key: p.value for p in model.metadata_props}, str(path))


def name_dynamic_axes(model: onnx.ModelProto, axes: dict[str, dict[int, str]]) -> onnx.ModelProto:
    """Give the inputs' dynamic axes the names of the export spec (simplifiers may rename them
    ``unk__N``), so that inputs and outputs that share an axis share its name."""
    for graph_input in model.graph.input:
        for axis, name in axes.get(graph_input.name, {}).items():
            dim = graph_input.type.tensor_type.shape.dim[axis]
            if not dim.HasField("dim_value"):
                dim.dim_param = name
    return model


def simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """onnxsim (constant folding, shape inference), falling back to onnxslim; returns the tool used."""
    try:
        import onnxsim

        simplified, ok = onnxsim.simplify(model)
        if ok:
            return simplified, "onnxsim"
        logger.warning("onnxsim could not validate its result; trying onnxslim")
    except Exception as exc:  # onnxsim fails on some dynamic-shape graphs
        logger.warning("onnxsim failed (%s); trying onnxslim", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    try:
        import onnxslim

        return onnxslim.slim(model), "onnxslim"
    except Exception as exc:
        logger.warning("onnxslim failed too (%s); keeping the unsimplified graph", exc)
        return model, "none"


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 weights and compute with FP32 inputs/outputs (TensorRT 11 takes precision from the graph).

    The graph named in the model's contract decides what stays FP32 besides FP16_KEEP_FP32_OPS:
    Softmax in memory attention (it normalises over up to ~29k keys, where FP16's 10-bit mantissa
    loses the small weights that sum to most of the mass). The exporter and the engine builder's
    TensorRT 11 conversion both come here, so both make the same graph."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    metadata = {p.key: p.value for p in model.metadata_props}
    graph = GraphContract.from_json(metadata[METADATA_KEY]).graph if METADATA_KEY in metadata else None
    softmax_fp32 = graph == MEMORY_ATTENTION

    converted = convert_float_to_float16(
        model, keep_io_types=True,
        op_block_list=list(DEFAULT_OP_BLOCK_LIST) + FP16_KEEP_FP32_OPS + (["Softmax"] if softmax_fp32 else []),
    )
    # The converter appends its input casts after their consumers; ONNX requires topological order.
    wrapper = OnnxModel(converted)
    wrapper.topological_sort()
    return wrapper.model


UINT8_CASTS_WITH = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16}


def tensorrt_type_violations(model: onnx.ModelProto) -> list[str]:
    """Where ``model`` breaks TensorRT 10's rule for UINT8: a uint8 tensor may only be a graph input or
    output and go through a Cast from or to float32/float16 (docs.nvidia.com/deeplearning/tensorrt/latest/
    _static/python-api/infer/FoundationalTypes/DataType.html). TensorRT-RTX's parser refuses a Gather on
    uint8, and JetPack's TensorRT 10.3 cannot be run here, so the exporter checks the rule itself.
    One line per offending node (empty: the graph obeys it)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info]}
    types.update({i.name: i.data_type for i in inferred.graph.initializer})
    uint8 = onnx.TensorProto.UINT8
    problems = []
    for node in inferred.graph.node:
        ins = [types.get(name) for name in node.input if name]
        outs = [types.get(name) for name in node.output if name]
        if uint8 not in ins and uint8 not in outs:
            continue
        if node.op_type == "Cast" and len(ins) == 1 and len(outs) == 1:
            other = outs[0] if ins[0] == uint8 else ins[0]
            if other in UINT8_CASTS_WITH:
                continue
            why = f"casts uint8 {'to' if ins[0] == uint8 else 'from'} {onnx.TensorProto.DataType.Name(other)}"
        else:
            why = "takes uint8" if uint8 in ins else "makes uint8"
        problems.append(f"node {node.name or '?'} ({node.op_type}) {why}: TensorRT allows uint8 only at the graph's "
                        "inputs and outputs, cast from or to float32/float16")
    return problems


def save_checked(model: onnx.ModelProto, path: Path) -> None:
    """Save in one file (external data only above 2 GiB) and run the full ONNX checker on it."""
    large = model.ByteSize() > TWO_GIB
    onnx.save_model(model, str(path), save_as_external_data=large,
                    location=f"{path.name}.data" if large else None)
    onnx.checker.check_model(str(path), full_check=True)
