"""The guard: static checks that an ONNX file is a fair, self-contained image classifier.

``inspect_model`` never raises on a bad file: it returns a ``GuardReport`` whose ``reason``
names the problem and whose ``fix`` says what to do. ``check_model`` raises
``ModelRejected`` instead. Checks, in order (the first failure is reported):

1. file size (before parsing);  2. parses as an ONNX ModelProto with a graph;
3. no external-data tensors (checked before anything could load them);
4. count the stored numbers (``count_model``);  5. no training-info graphs;
6. only the default op domain, no custom-domain model-local functions;
7. every op in ``ALLOWED_OPS``;  8. stored tensors are float32 (small integer tensors allowed);
9. one float32 input ``[batch, *task.input_shape]``, one float32 output ``[batch, classes]``,
   batch dimension dynamic;  10. ``onnx.checker.check_model(full_check=True)``;
11. optional cross-check: onnxruntime's own view of the graph (no optimizations) stores no
    more non-zero numbers than were counted.

No PyTorch here; onnxruntime is imported only for the cross-check.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from occam.errors import ModelRejected
from occam.scoring import onnxproto as onnx
from occam.scoring.count import CountReport, TensorCount, count_model, iter_graphs, model_opsets
from occam.scoring.onnxproto import AttributeProto, TensorProto

if TYPE_CHECKING:
    from occam.tasks import Task

__all__ = ["ALLOWED_OPS", "GuardPolicy", "DEFAULT_POLICY", "GuardReport", "inspect_model", "check_model",
           "inspect_bytes"]

# Ops a small image classifier needs, all in the default ONNX domain. Deliberately absent:
# control flow (If, Loop, Scan), random generators (Random*, Multinomial, Bernoulli, Dropout),
# type and bit games (Cast, CastLike, Bitwise*, BitShift), ops that could unpack values packed
# into a few stored numbers (Floor, Ceil, Round, Mod, trig functions, Det), procedural tensor
# builders (ConstantOfShape, Range, EyeLike, OneHot, Trilu), Resize, (De)QuantizeLinear,
# integer ops (ArgMax/ArgMin, TopK, NonZero, Unique), sequences and optional types.
ALLOWED_OPS: frozenset[str] = frozenset({
    # constants and plumbing
    "Constant", "Identity",
    # linear algebra
    "MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum",
    # elementwise arithmetic
    "Add", "Sub", "Mul", "Div", "Neg", "Abs", "Sqrt", "Pow", "Exp", "Log", "Reciprocal",
    "Max", "Min", "Sum", "Mean", "Clip", "Sign", "Erf",
    # activations
    "Relu", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Gelu", "Sigmoid", "HardSigmoid", "HardSwish",
    "Tanh", "Softplus", "Softsign", "Mish", "ThresholdedRelu", "Softmax", "LogSoftmax", "Hardmax",
    # pooling
    "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool", "GlobalLpPool",
    # normalization
    "BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization",
    "LpNormalization", "MeanVarianceNormalization", "RMSNormalization",
    # reductions
    "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
    # shapes and layout
    "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather",
    "Shape", "Size", "Expand", "Tile", "Pad", "DepthToSpace", "SpaceToDepth",
    # comparisons and masks (attention code)
    "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Where", "Not", "And", "Or",
})

_DEFAULT_DOMAINS = ("", "ai.onnx")
_INT_TYPES = (TensorProto.INT64, TensorProto.INT32, TensorProto.BOOL)


@dataclass(frozen=True)
class GuardPolicy:
    """What the guard accepts. ``DEFAULT_POLICY`` is what the arena and ``occam score`` use."""

    max_bytes: int = 32 * 1024 * 1024
    allowed_ops: frozenset[str] = ALLOWED_OPS
    max_int_elements: int = 64  # integer/bool tensors (shapes, axes, indices) up to this size are fine


DEFAULT_POLICY = GuardPolicy()


@dataclass
class GuardReport:
    ok: bool
    reason: str | None = None
    fix: str | None = None
    nnz: int | None = None
    stored_values: int | None = None
    tensors: list[TensorCount] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)
    opset: int | None = None
    input_shape: list[int | str] | None = None
    output_shape: list[int | str] | None = None
    size_bytes: int | None = None
    task: str | None = None
    cross_checked: bool = False
    ort_nnz: int | None = None
    batch_made_dynamic: bool = False  # the file fixed the batch at 1; the checked model has a symbolic batch

    def raise_if_rejected(self) -> None:
        if not self.ok:
            raise ModelRejected(self.reason or "model rejected", self.fix)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "reason": self.reason, "fix": self.fix, "nnz": self.nnz,
            "stored_values": self.stored_values, "tensors": [t.to_dict() for t in self.tensors],
            "ops": dict(self.ops), "opset": self.opset, "input_shape": self.input_shape,
            "output_shape": self.output_shape, "size_bytes": self.size_bytes, "task": self.task,
            "cross_checked": self.cross_checked, "ort_nnz": self.ort_nnz,
            "batch_made_dynamic": self.batch_made_dynamic,
        }


class _Reject(Exception):
    def __init__(self, reason: str, fix: str):
        super().__init__(reason)
        self.reason, self.fix = reason, fix


# ---- reading --------------------------------------------------------------------------------

def read_source(source: str | Path | bytes, max_bytes: int) -> bytes:
    """The file's bytes; raises _Reject for missing or oversized files (size checked before reading)."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if len(data) > max_bytes:
            raise _Reject(f"the model is {_mib(len(data))}, over the {_mib(max_bytes)} size limit",
                          "make the model smaller (fewer or sparser weights)")
        return data
    path = Path(source)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise _Reject(f"model file not found: {path}", "check the path") from None
    except OSError as exc:
        raise _Reject(f"cannot read model file {path}: {exc.strerror or exc}", "check the path") from None
    if path.is_dir():
        raise _Reject(f"{path} is a directory, not an ONNX file", "pass the path of one .onnx file")
    if size > max_bytes:
        raise _Reject(f"the model file is {_mib(size)}, over the {_mib(max_bytes)} size limit",
                      "make the model smaller (fewer or sparser weights)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _Reject(f"cannot read model file {path}: {exc.strerror or exc}", "check the file") from None
    if len(data) > max_bytes:  # grew while we looked
        raise _Reject(f"the model file is {_mib(len(data))}, over the {_mib(max_bytes)} size limit",
                      "make the model smaller (fewer or sparser weights)")
    return data


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} bytes"


def parse_model(data: bytes) -> onnx.ModelProto:
    if not data:
        raise _Reject("the model file is empty", "export the model again (torch.onnx.export(..., dynamo=True))")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:
        raise _Reject(f"the file is not a valid ONNX model (truncated or not ONNX: {type(exc).__name__})",
                      "upload the .onnx file written by torch.onnx.export, complete and unmodified") from None
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise _Reject("the file is not an ONNX model (no graph found; truncated or not ONNX)",
                      "upload the .onnx file written by torch.onnx.export, complete and unmodified")
    return model


# ---- structural walks -----------------------------------------------------------------------

def _all_tensors(model: onnx.ModelProto):
    """(where, TensorProto) for every tensor stored anywhere in the model."""
    def from_attr(attr: AttributeProto, where: str):
        if attr.type == AttributeProto.TENSOR:
            yield where, attr.t
        elif attr.type == AttributeProto.TENSORS:
            for t in attr.tensors:
                yield where, t
        elif attr.type == AttributeProto.SPARSE_TENSOR:
            yield where, attr.sparse_tensor.values
            yield where, attr.sparse_tensor.indices
        elif attr.type == AttributeProto.SPARSE_TENSORS:
            for sp in attr.sparse_tensors:
                yield where, sp.values
                yield where, sp.indices

    for gwhere, g in iter_graphs(model):
        for t in g.initializer:
            yield f"{gwhere}: initializer {t.name}", t
        for sp in g.sparse_initializer:
            yield f"{gwhere}: sparse_initializer {sp.values.name}", sp.values
            yield f"{gwhere}: sparse_initializer {sp.values.name}", sp.indices
        for node in g.node:
            for attr in node.attribute:
                yield from from_attr(attr, f"{gwhere}: attribute {attr.name} of node {node.name or node.op_type}")
    for f in model.functions:
        for attr in f.attribute_proto:
            yield from from_attr(attr, f"function {f.name}: attribute {attr.name}")
        for node in f.node:
            for attr in node.attribute:
                yield from from_attr(attr, f"function {f.name}: attribute {attr.name} of node {node.op_type}")


def _all_nodes(model: onnx.ModelProto):
    """(where, node) for every node: main graph, subgraphs, functions."""
    for gwhere, g in iter_graphs(model):
        for node in g.node:
            yield gwhere, node
    for f in model.functions:
        for node in f.node:
            yield f"function {f.name}", node


def _check_external(model: onnx.ModelProto) -> None:
    for where, t in _all_tensors(model):
        if t.data_location == TensorProto.EXTERNAL or len(t.external_data):
            raise _Reject(f"tensor {t.name or '(unnamed)'} ({where}) keeps its data in an external file; "
                          "only self-contained models are accepted",
                          "export with external_data=False (torch.onnx.export(..., external_data=False)) "
                          "or onnx.save_model(model, path, save_as_external_data=False)")


def _check_domains(model: onnx.ModelProto) -> None:
    for f in model.functions:
        if f.domain not in _DEFAULT_DOMAINS:
            raise _Reject(f"model-local function {f.name!r} is in custom domain {f.domain!r}; only standard "
                          "ONNX ops in the default domain are accepted",
                          "inline the function (onnx.inliner.inline_local_functions) or re-export with "
                          "torch.onnx.export(..., dynamo=True)")
    for where, node in _all_nodes(model):
        if node.domain not in _DEFAULT_DOMAINS:
            raise _Reject(f"op {node.op_type!r} in {where} is in custom domain {node.domain!r}; only standard "
                          "ONNX ops in the default domain are accepted",
                          "replace it with standard ONNX ops (or inline model-local functions)")


_OP_HINTS = {
    "If": "control flow is not allowed", "Loop": "control flow is not allowed", "Scan": "control flow is not allowed",
    "Cast": "casts could unpack values hidden in other types", "CastLike": "casts could unpack hidden values",
    "ConstantOfShape": "procedural tensor builders are not allowed", "Range": "procedural tensor builders "
    "are not allowed", "EyeLike": "procedural tensor builders are not allowed",
    "OneHot": "procedural tensor builders are not allowed", "Trilu": "procedural tensor builders are not allowed",
    "Dropout": "remove dropout for inference (model.eval())",
}


def _check_ops(model: onnx.ModelProto, policy: GuardPolicy) -> dict[str, int]:
    ops: dict[str, int] = {}
    for _where, node in _all_nodes(model):
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    local = {(f.domain, f.name) for f in model.functions}
    for where, node in _all_nodes(model):
        if node.op_type in policy.allowed_ops and (node.domain, node.op_type) not in local:
            continue
        hint = _OP_HINTS.get(node.op_type, "it is not on the allow-list for image classifiers")
        raise _Reject(f"op {node.op_type!r} (in {where}) is not allowed: {hint}",
                      "use only the allowed ops listed in docs/scoring.md (what torch.onnx.export(..., "
                      "dynamo=True) emits for convolutions, linear layers, pooling, normalization, attention)")
    return dict(sorted(ops.items()))


def _check_dtypes(counts: CountReport, policy: GuardPolicy) -> None:
    for t in counts.tensors:
        if t.sparse:
            raise _Reject(f"{t.where.rsplit(' ', 1)[0]} {t.name!r} is a sparse tensor; the ONNX checker does not "
                          "accept sparse tensors as inputs to ordinary ops",
                          "store the weight densely: zeros are free (only non-zero numbers count)")
        if t.dtype == "float32":
            continue
        if t.dtype in ("int64", "int32", "bool"):
            if t.sparse_indices:
                continue  # sparse storage: its indices are counted, any length
            if t.size <= policy.max_int_elements:
                continue
            raise _Reject(f"{t.where} {t.name!r} is a {t.dtype} tensor of {t.size} numbers; integer tensors "
                          f"may hold at most {policy.max_int_elements} (shapes, axes, indices)",
                          "store weights as float32; keep integer tensors for shapes and axes only")
        raise _Reject(f"{t.where} {t.name!r} is stored as {t.dtype}; weights must be float32",
                      "convert the model to float32 before export (model.float()); no float16, "
                      "float64 or int8/quantized weights")


def _dims(vi: onnx.ValueInfoProto) -> list[int | str] | None:
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not tt.HasField("shape"):
        return None
    out: list[int | str] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            out.append(d.dim_param or "?")
        else:
            out.append("?")
    return out


_EXPORT_FIX = ('export with a dynamic batch: torch.onnx.export(model, (x,), dynamo=True, '
               'dynamic_shapes=({0: torch.export.Dim("batch")},))')


def _check_io(model: onnx.ModelProto, task: Task | None, report: GuardReport) -> None:
    g = model.graph
    init_names = {t.name for t in g.initializer} | {sp.values.name for sp in g.sparse_initializer}
    inputs = [vi for vi in g.input if vi.name not in init_names]
    if inputs:
        report.input_shape = _dims(inputs[0])
    if g.output:
        report.output_shape = _dims(g.output[0])
    want_in = f"[batch, {', '.join(map(str, task.input_shape))}]" if task else "[batch, ...]"
    if len(inputs) != 1:
        raise _Reject(f"the model has {len(inputs)} inputs; it must have exactly one, float32 {want_in}",
                      "export a model whose forward takes one image tensor")
    if len(g.output) != 1:
        raise _Reject(f"the model has {len(g.output)} outputs; it must have exactly one, the logits "
                      "[batch, classes]", "return only the logits from forward()")
    for kind, vi in (("input", inputs[0]), ("output", g.output[0])):
        if not vi.type.HasField("tensor_type") or vi.type.tensor_type.elem_type != TensorProto.FLOAT:
            got = (onnx.helper.tensor_dtype_to_string(vi.type.tensor_type.elem_type)
                   if vi.type.HasField("tensor_type") else "not a tensor")
            raise _Reject(f"the model's {kind} {vi.name!r} is {got}; it must be float32",
                          "export in float32 with float32 pixels in [0, 1] as input")
    din, dout = report.input_shape, report.output_shape
    if din is None or not din:
        raise _Reject(f"the model's input {inputs[0].name!r} has no shape; it must be {want_in}",
                      _EXPORT_FIX)
    if din[0] == 1 and (dout is None or not dout or dout[0] == 1 or isinstance(dout[0], str)):
        _make_batch_dynamic(model, inputs[0], g.output[0])
        report.batch_made_dynamic = True
        g = model.graph  # rewritten in place: read the shapes again
        inputs = [vi for vi in g.input if vi.name not in init_names]
        report.input_shape, report.output_shape = din, dout = _dims(inputs[0]), _dims(g.output[0])
    if isinstance(din[0], int):
        raise _Reject(f"the model's input batch dimension is fixed at {din[0]}; it must be dynamic so any "
                      "batch size works", _EXPORT_FIX)
    if task is not None and [*din[1:]] != list(task.input_shape):
        raise _Reject(f"the model's input shape is {_fmt(din)}, but task {task.name} needs {want_in}",
                      f"make the model take {want_in} float32 pixels in [0, 1]")
    want_out = f"[batch, {task.num_classes}]" if task else "[batch, classes]"
    if dout is None or len(dout) != 2:
        raise _Reject(f"the model's output shape is {_fmt(dout)}; it must be logits {want_out}",
                      "return logits of shape [batch, classes] (flatten before the last layer)")
    if isinstance(dout[0], int):
        raise _Reject(f"the model's output batch dimension is fixed at {dout[0]}; it must be dynamic",
                      _EXPORT_FIX)
    if not isinstance(dout[1], int) or (task is not None and dout[1] != task.num_classes):
        raise _Reject(f"the model's output shape is {_fmt(dout)}, but task {task.name if task else ''} "
                      f"needs {want_out}".replace("task  needs", "it needs"),
                      f"make the last layer produce {task.num_classes if task else 'one logit per class'} "
                      "logits")


_SHAPE_OPS = {"Shape", "Size"}  # their outputs describe a shape, they do not carry the batch


def _make_batch_dynamic(model: onnx.ModelProto, inp: onnx.ValueInfoProto, out: onnx.ValueInfoProto) -> None:
    """Turn a fixed batch dimension of 1 (input and output) into a symbolic ``batch``, in place.

    Older exporters fix the batch at the example's size. That is harmless when no node bakes the
    batch size into a constant: ONNX shape inference (with constant propagation) on the model with
    a symbolic batch must carry ``batch`` through to the output. When a node loses it (a Reshape
    to a constant ``[1, -1]``, an Expand to a constant shape ...), reject naming that node.
    """
    cand = onnx.ModelProto()
    cand.CopyFrom(model)
    g = cand.graph
    name_in, name_out = inp.name, out.name
    for vi in g.input:
        if vi.name == name_in:
            vi.type.tensor_type.shape.dim[0].dim_param = "batch"
    for vi in g.output:
        if vi.name == name_out and vi.type.tensor_type.HasField("shape") and len(vi.type.tensor_type.shape.dim):
            vi.type.tensor_type.shape.dim[0].Clear()  # inferred below, then set
    del g.value_info[:]  # intermediate shapes recorded with the fixed batch

    try:
        inferred = sys.modules["onnx.shape_inference"].infer_shapes(cand, strict_mode=True, data_prop=True)
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        raise _Reject(f"the model's batch dimension is fixed at 1 and cannot be made dynamic: shape inference "
                      f"with a variable batch fails ({text})", _EXPORT_FIX) from None
    shapes = {vi.name: _dims(vi) for vi in (*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input)}
    out_dims = shapes.get(name_out)
    if out_dims and out_dims[0] not in ("batch", "?"):
        culprit = None
        for node in inferred.graph.node:
            if node.op_type in _SHAPE_OPS:
                continue
            carried = any("batch" in (shapes.get(i) or []) for i in node.input if i)
            lost = any((d := shapes.get(o)) and "batch" not in d and isinstance(d[0], int) for o in node.output if o)
            if carried and lost:
                culprit = node
                break
        where = (f"node {culprit.name or '(unnamed)'!r} ({culprit.op_type}) fixes the batch size"
                 if culprit is not None else "a node fixes the batch size")
        raise _Reject(f"the model's batch dimension is fixed at 1 and cannot be made dynamic: {where}, so the "
                      f"output would be {_fmt(out_dims)} for any batch",
                      "reshape with the batch left free (x.flatten(1) or x.view(x.size(0), -1), not x.view(1, -1)) "
                      f"and {_EXPORT_FIX}")
    for vi in g.output:
        if vi.name == name_out and vi.type.tensor_type.HasField("shape") and len(vi.type.tensor_type.shape.dim):
            vi.type.tensor_type.shape.dim[0].dim_param = "batch"
    model.CopyFrom(cand)


def _fmt(dims: list[int | str] | None) -> str:
    return "unknown" if dims is None else "[" + ", ".join(map(str, dims)) + "]"


def _check_checker(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        text = " ".join(m.strip() for m in msg[:3])[:400]
        raise _Reject(f"the ONNX checker refuses the model: {text}",
                      "export again with torch.onnx.export(..., dynamo=True) and run "
                      "onnx.checker.check_model(model, full_check=True) before submitting") from None


def ort_cross_check(data: bytes, counted: CountReport) -> int:
    """nnz of onnxruntime's unoptimized view of the model; raises _Reject if it exceeds ``counted``.

    ``ORT_DISABLE_ALL`` so that onnxruntime does not fold constants: folding a legitimately
    factorized weight (``U @ V``) would create a larger tensor that looks like hidden values.
    """
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="occam-guard-") as tmp:
        out = os.path.join(tmp, "ort_view.onnx")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.optimized_model_filepath = out
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 4
        try:
            ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            text = " ".join(str(exc).split())[:400]
            raise _Reject(f"onnxruntime cannot load the model: {text}",
                          "make sure the model runs with onnxruntime on CPU before submitting") from None
        try:
            view = onnx.load(out, load_external_data=True)
        except Exception as exc:  # pragma: no cover - onnxruntime wrote something onnx cannot read
            raise _Reject(f"cannot read onnxruntime's view of the model ({type(exc).__name__})",
                          "re-export the model with torch.onnx.export(..., dynamo=True)") from None
    ort_counts = count_model(view)
    ort_nnz = ort_counts.unique_nnz
    if ort_nnz > counted.nnz:
        raise _Reject(f"onnxruntime's view of the model holds {ort_nnz} non-zero numbers, more than the "
                      f"{counted.nnz} counted in the file; the model hides values the counter cannot see",
                      "store every weight as an ordinary float32 initializer or Constant")
    return ort_nnz


# ---- entry points ---------------------------------------------------------------------------

def inspect_bytes(data: bytes, task: Task | None = None, *, policy: GuardPolicy = DEFAULT_POLICY,
                  cross_check: bool = True) -> tuple[GuardReport, onnx.ModelProto | None]:
    """Like ``inspect_model`` for bytes already read; also returns the parsed model (None if unparsable).

    When ``report.batch_made_dynamic``, the returned model is the checked one with a symbolic batch:
    run that (``model.SerializeToString()``), not ``data``, which fixes the batch at 1.
    """
    report = GuardReport(ok=False, size_bytes=len(data), task=task.name if task is not None else None)
    model: onnx.ModelProto | None = None
    try:
        if len(data) > policy.max_bytes:
            raise _Reject(f"the model is {_mib(len(data))}, over the {_mib(policy.max_bytes)} size limit",
                          "make the model smaller (fewer or sparser weights)")
        model = parse_model(data)
        opsets = model_opsets(model)
        report.opset = opsets.get("")
        _check_external(model)
        counts = count_model(model)
        report.nnz, report.stored_values, report.tensors = counts.nnz, counts.stored_values, counts.tensors
        report.ops = {}
        for _w, node in _all_nodes(model):
            report.ops[node.op_type] = report.ops.get(node.op_type, 0) + 1
        report.ops = dict(sorted(report.ops.items()))
        if len(model.training_info):
            raise _Reject("the model carries training-info graphs; only inference graphs are accepted",
                          "remove model.training_info before saving")
        _check_domains(model)
        _check_ops(model, policy)
        _check_dtypes(counts, policy)
        _check_io(model, task, report)
        _check_checker(model)
        if cross_check:
            report.ort_nnz = ort_cross_check(model.SerializeToString() if report.batch_made_dynamic else data, counts)
            report.cross_checked = True
    except _Reject as rej:
        report.reason, report.fix = rej.reason, rej.fix
        return report, model
    except Exception as exc:  # a malformed file must never crash the guard
        report.reason = f"the model could not be inspected: {type(exc).__name__}: {exc}"[:500]
        report.fix = "export the model again with torch.onnx.export(..., dynamo=True, external_data=False)"
        return report, model
    report.ok = True
    return report, model


def inspect_model(source: str | Path | bytes, task: Task | None = None, *, policy: GuardPolicy = DEFAULT_POLICY,
                  cross_check: bool = True) -> GuardReport:
    """The guard's verdict on an ONNX file (path or bytes) for ``task`` (None: task-independent checks).

    Never raises on a bad file: ``.ok`` is False and ``.reason``/``.fix`` explain.
    """
    try:
        data = read_source(source, policy.max_bytes)
    except _Reject as rej:
        size = len(source) if isinstance(source, bytes | bytearray) else None
        return GuardReport(ok=False, reason=rej.reason, fix=rej.fix, size_bytes=size,
                           task=task.name if task is not None else None)
    report, _ = inspect_bytes(data, task, policy=policy, cross_check=cross_check)
    return report


def check_model(source: str | Path | bytes, task: Task | None = None, *, policy: GuardPolicy = DEFAULT_POLICY,
                cross_check: bool = True) -> GuardReport:
    """``inspect_model``, raising ``ModelRejected(problem, fix)`` when the model is rejected."""
    report = inspect_model(source, task, policy=policy, cross_check=cross_check)
    report.raise_if_rejected()
    return report
