"""Count every number an ONNX file stores.

The rule (see docs/scoring.md): each stored tensor counts once, wherever it hides —
initializers, sparse initializers (values *and* indices), ``Constant`` nodes, tensor-valued
attributes of any node, subgraphs (``GRAPH``/``GRAPHS`` attributes), model-local functions
and training-info graphs. A value is non-zero when its *bit pattern* is non-zero, so a
stored ``-0.0`` or ``NaN`` counts. ``FLOAT``/``FLOATS`` attributes of ordinary ops count
when they differ from the op schema's default; ``INT``/``INTS`` attributes of ordinary ops
are structural (kernel sizes, axes, pads) and do not count.

This module imports only NumPy and ONNX's protobuf classes (``occam.scoring.onnxproto``, which avoids
the slow ``import onnx``).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from occam.scoring import onnxproto as onnx
from occam.scoring.onnxproto import AttributeProto, TensorProto

__all__ = ["TensorCount", "CountReport", "count_model", "count_tensor", "iter_graphs"]


@dataclass
class TensorCount:
    """One stored tensor (or attribute list) and how many numbers it contributes."""

    name: str
    where: str
    dtype: str
    shape: list[int]
    size: int  # numbers stored
    nnz: int  # of which non-zero by bit pattern
    digest: str = field(default="", repr=False, compare=False)  # content hash (for the ORT cross-check)
    sparse_indices: bool = field(default=False, repr=False, compare=False)  # indices of a sparse tensor
    sparse: bool = field(default=False, repr=False, compare=False)  # part of a sparse tensor

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("digest")
        d.pop("sparse_indices")
        d.pop("sparse")
        return d


@dataclass
class CountReport:
    nnz: int
    stored_values: int
    tensors: list[TensorCount]

    @property
    def unique_nnz(self) -> int:
        """Non-zeros counting identical contents once (used to compare with onnxruntime's view)."""
        seen: dict[str, int] = {}
        for t in self.tensors:
            seen.setdefault(t.digest or f"{t.where}/{t.name}", t.nnz)
        return sum(seen.values())

    def to_dict(self) -> dict:
        return {"nnz": self.nnz, "stored_values": self.stored_values,
                "tensors": [t.to_dict() for t in self.tensors]}


# ---- tensors --------------------------------------------------------------------------------

# Bytes per stored element in raw_data, for counting by bit pattern (0 = packed 4-bit types).
_RAW_ITEMSIZE = {
    TensorProto.FLOAT: 4, TensorProto.UINT8: 1, TensorProto.INT8: 1, TensorProto.UINT16: 2,
    TensorProto.INT16: 2, TensorProto.INT32: 4, TensorProto.INT64: 8, TensorProto.BOOL: 1,
    TensorProto.FLOAT16: 2, TensorProto.DOUBLE: 8, TensorProto.UINT32: 4, TensorProto.UINT64: 8,
    TensorProto.COMPLEX64: 4, TensorProto.COMPLEX128: 8, TensorProto.BFLOAT16: 2,
}
for _name, _size in (("FLOAT8E4M3FN", 1), ("FLOAT8E4M3FNUZ", 1), ("FLOAT8E5M2", 1), ("FLOAT8E5M2FNUZ", 1),
                     ("FLOAT8E8M0", 1), ("UINT4", 0), ("INT4", 0), ("FLOAT4E2M1", 0), ("UINT2", 0), ("INT2", 0)):
    if hasattr(TensorProto, _name):
        _RAW_ITEMSIZE[getattr(TensorProto, _name)] = _size

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def dtype_name(data_type: int) -> str:
    if data_type == TensorProto.FLOAT:
        return "float32"
    if data_type == TensorProto.DOUBLE:
        return "float64"
    try:
        return TensorProto.DataType.Name(data_type).lower()
    except ValueError:
        return f"type{data_type}"


def _nz_bytes(raw: bytes, itemsize: int) -> tuple[int, int]:
    """(elements, non-zero elements) of a little-endian buffer, by bit pattern."""
    if itemsize == 0:  # two 4-bit values per byte
        b = np.frombuffer(raw, dtype=np.uint8)
        return 2 * b.size, int(np.count_nonzero(b & 0x0F)) + int(np.count_nonzero(b >> 4))
    usable = len(raw) - len(raw) % itemsize
    a = np.frombuffer(raw[:usable], dtype=_UINT[itemsize])
    extra = len(raw) - usable  # malformed tail bytes still count as stored values
    return a.size + extra, int(np.count_nonzero(a)) + sum(1 for c in raw[usable:] if c)


def _float_bits(values, dtype) -> np.ndarray:
    a = np.asarray(values, dtype=dtype)
    return a.view(_UINT[a.itemsize]) if a.size else a.view(np.uint8)


def tensor_numbers(t: TensorProto) -> tuple[int, int, str]:
    """(stored values, non-zero values, content digest) of a TensorProto's inline data.

    Every data field is read (a tensor could fill ``raw_data`` and ``float_data`` at once).
    """
    h = hashlib.blake2b(digest_size=16)
    h.update(struct.pack("<i", t.data_type))
    size = nnz = 0
    if t.raw_data:
        s, n = _nz_bytes(t.raw_data, _RAW_ITEMSIZE.get(t.data_type, 1))
        size, nnz = size + s, nnz + n
        h.update(t.raw_data)
    if len(t.float_data):
        a = _float_bits(t.float_data, np.float32)
        size, nnz = size + a.size, nnz + int(np.count_nonzero(a))
        h.update(a.tobytes())
    if len(t.double_data):
        a = _float_bits(t.double_data, np.float64)
        size, nnz = size + a.size, nnz + int(np.count_nonzero(a))
        h.update(a.tobytes())
    for values, dt in ((t.int32_data, np.int32), (t.int64_data, np.int64), (t.uint64_data, np.uint64)):
        if len(values):
            a = np.asarray(values, dtype=dt)
            size, nnz = size + a.size, nnz + int(np.count_nonzero(a))
            h.update(a.tobytes())
    if len(t.string_data):
        size += len(t.string_data)
        nnz += sum(1 for s in t.string_data if s)
        for s in t.string_data:
            h.update(struct.pack("<q", len(s)) + s)
    return size, nnz, h.hexdigest()


def count_tensor(t: TensorProto, where: str, name: str | None = None) -> TensorCount:
    size, nnz, digest = tensor_numbers(t)
    return TensorCount(name=name if name is not None else t.name, where=where, dtype=dtype_name(t.data_type),
                       shape=[int(d) for d in t.dims], size=size, nnz=nnz, digest=digest)


def _list_count(values, dtype, name: str, where: str, dtype_label: str) -> TensorCount:
    a = np.asarray(list(values), dtype=dtype)
    bits = a.view(_UINT[a.itemsize]) if a.size else a
    digest = hashlib.blake2b(dtype_label.encode() + a.tobytes(), digest_size=16).hexdigest()
    return TensorCount(name=name, where=where, dtype=dtype_label, shape=[int(a.size)], size=int(a.size),
                       nnz=int(np.count_nonzero(bits)), digest=digest)


def _sparse_counts(sp: onnx.SparseTensorProto, where: str, name: str) -> list[TensorCount]:
    vals = count_tensor(sp.values, f"{where} values", name or sp.values.name)
    vals.shape = [int(d) for d in sp.dims] if sp.dims else vals.shape
    idx = count_tensor(sp.indices, f"{where} indices", name or sp.values.name)
    idx.sparse_indices = True
    vals.sparse = idx.sparse = True
    return [vals, idx]


# ---- attributes -----------------------------------------------------------------------------

_DEFAULTS: dict[tuple[str, str, int], dict[str, AttributeProto]] = {}


def schema_defaults(op_type: str, domain: str, opset: int) -> dict[str, AttributeProto] | None:
    """Attribute defaults of the op's schema at ``opset``; None when the op is unknown."""
    key = (op_type, domain, opset)
    if key not in _DEFAULTS:
        try:
            schema = onnx.defs.get_schema(op_type, opset, domain)
        except Exception:  # unknown op or domain: no defaults, every float attribute counts
            _DEFAULTS[key] = None  # type: ignore[assignment]
        else:
            found = {n: onnx.attribute_default(a) for n, a in schema.attributes.items()}
            _DEFAULTS[key] = {n: d for n, d in found.items() if d.type != AttributeProto.UNDEFINED}
    return _DEFAULTS[key]


def _f32_bits(values) -> bytes:
    return np.asarray(list(values), dtype=np.float32).tobytes()


def _float_attr_is_default(attr: AttributeProto, defaults: dict[str, AttributeProto] | None) -> bool:
    if not defaults or attr.name not in defaults:
        return False
    d = defaults[attr.name]
    if attr.type == AttributeProto.FLOAT and d.type == AttributeProto.FLOAT:
        return _f32_bits([attr.f]) == _f32_bits([d.f])
    if attr.type == AttributeProto.FLOATS and d.type == AttributeProto.FLOATS:
        return _f32_bits(attr.floats) == _f32_bits(d.floats)
    return False


def _node_label(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"#{index} ({node.op_type})"


class _Counter:
    def __init__(self, opsets: dict[str, int]):
        self.opsets = opsets
        self.tensors: list[TensorCount] = []

    def graph(self, g: onnx.GraphProto, prefix: str = "") -> None:
        for t in g.initializer:
            self.tensors.append(count_tensor(t, f"{prefix}initializer"))
        for sp in g.sparse_initializer:
            self.tensors.extend(_sparse_counts(sp, f"{prefix}sparse_initializer", sp.values.name))
        self.nodes(g.node, prefix)

    def nodes(self, nodes, prefix: str) -> None:
        for i, node in enumerate(nodes):
            label = _node_label(node, i)
            is_constant = node.op_type == "Constant" and node.domain in ("", "ai.onnx")
            defaults = None if is_constant else schema_defaults(
                node.op_type, "" if node.domain == "ai.onnx" else node.domain,
                self.opsets.get(node.domain or "", self.opsets.get("", 1)))
            out = node.output[0] if node.output else label
            for attr in node.attribute:
                where = (f"{prefix}Constant node {label}" if is_constant
                         else f"{prefix}attribute {attr.name} of node {label}")
                self.attribute(attr, where, out if is_constant else attr.name, is_constant, defaults,
                               f"{prefix}subgraph {attr.name} of node {label}")

    def attribute(self, attr: AttributeProto, where: str, name: str, is_constant: bool,
                  defaults: dict[str, AttributeProto] | None, sub_prefix: str) -> None:
        if attr.ref_attr_name:  # inside a function: refers to the caller's attribute
            return
        T = AttributeProto
        if attr.type == T.TENSOR:
            self.tensors.append(count_tensor(attr.t, where, name))
        elif attr.type == T.TENSORS:
            for k, t in enumerate(attr.tensors):
                self.tensors.append(count_tensor(t, f"{where}[{k}]", name))
        elif attr.type == T.SPARSE_TENSOR:
            self.tensors.extend(_sparse_counts(attr.sparse_tensor, where, name))
        elif attr.type == T.SPARSE_TENSORS:
            for k, sp in enumerate(attr.sparse_tensors):
                self.tensors.extend(_sparse_counts(sp, f"{where}[{k}]", name))
        elif attr.type == T.GRAPH:
            self.graph(attr.g, f"{sub_prefix}: ")
        elif attr.type == T.GRAPHS:
            for k, g in enumerate(attr.graphs):
                self.graph(g, f"{sub_prefix}[{k}]: ")
        elif attr.type in (T.FLOAT, T.FLOATS):
            if is_constant or not _float_attr_is_default(attr, defaults):
                values = [attr.f] if attr.type == T.FLOAT else attr.floats
                tc = _list_count(values, np.float32, name, where, "float32")
                if attr.type == T.FLOAT:
                    tc.shape = []
                self.tensors.append(tc)
        elif attr.type in (T.INT, T.INTS) and is_constant:
            values = [attr.i] if attr.type == T.INT else attr.ints
            tc = _list_count(values, np.int64, name, where, "int64")
            if attr.type == T.INT:
                tc.shape = []
            self.tensors.append(tc)
        elif attr.type in (T.STRING, T.STRINGS) and is_constant:
            values = [attr.s] if attr.type == T.STRING else list(attr.strings)
            digest = hashlib.blake2b(b"\0".join(values), digest_size=16).hexdigest()
            self.tensors.append(TensorCount(name=name, where=where, dtype="string",
                                            shape=[] if attr.type == T.STRING else [len(values)],
                                            size=len(values), nnz=sum(1 for v in values if v), digest=digest))

    def function(self, f: onnx.FunctionProto) -> None:
        prefix = f"function {f.domain + '.' if f.domain else ''}{f.name}: "
        saved = self.opsets
        self.opsets = {**saved, **{o.domain: o.version for o in f.opset_import}}
        try:
            for attr in f.attribute_proto:  # default values of the function's attributes
                self.attribute(attr, f"{prefix}default of attribute {attr.name}", attr.name, True, None,
                               f"{prefix}default of attribute {attr.name}")
            self.nodes(f.node, prefix)
        finally:
            self.opsets = saved


def model_opsets(model: onnx.ModelProto) -> dict[str, int]:
    opsets = {o.domain: int(o.version) for o in model.opset_import}
    if "ai.onnx" in opsets and "" not in opsets:
        opsets[""] = opsets["ai.onnx"]
    return opsets


def count_model(model: onnx.ModelProto) -> CountReport:
    """Count the numbers ``model`` stores (see the module docstring for the rule)."""
    c = _Counter(model_opsets(model))
    c.graph(model.graph)
    for f in model.functions:
        c.function(f)
    for k, ti in enumerate(model.training_info):
        c.graph(ti.initialization, f"training_info[{k}] initialization: ")
        c.graph(ti.algorithm, f"training_info[{k}] algorithm: ")
    return CountReport(nnz=sum(t.nnz for t in c.tensors), stored_values=sum(t.size for t in c.tensors),
                       tensors=c.tensors)


def iter_graphs(model: onnx.ModelProto) -> Iterator[tuple[str, onnx.GraphProto]]:
    """Every graph in the model: main graph, subgraphs (recursively), training-info graphs."""
    stack: list[tuple[str, onnx.GraphProto]] = [("main graph", model.graph)]
    for k, ti in enumerate(model.training_info):
        stack.append((f"training_info[{k}] initialization", ti.initialization))
        stack.append((f"training_info[{k}] algorithm", ti.algorithm))
    while stack:
        where, g = stack.pop()
        yield where, g
        for node in g.node:
            stack.extend(_node_subgraphs(node, where))
    for f in model.functions:
        for node in f.node:
            stack.extend(_node_subgraphs(node, f"function {f.name}"))
    while stack:
        where, g = stack.pop()
        yield where, g
        for node in g.node:
            stack.extend(_node_subgraphs(node, where))


def _node_subgraphs(node: onnx.NodeProto, where: str) -> list[tuple[str, onnx.GraphProto]]:
    out = []
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            out.append((f"{where} / {attr.name} of {node.name or node.op_type}", attr.g))
        elif attr.type == AttributeProto.GRAPHS:
            out.extend((f"{where} / {attr.name}[{k}] of {node.name or node.op_type}", g)
                       for k, g in enumerate(attr.graphs))
    return out
