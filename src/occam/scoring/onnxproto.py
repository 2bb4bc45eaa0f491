"""ONNX's protobuf classes, checker and op schemas, without importing the ``onnx`` package.

``import onnx`` costs about 0.6 s, almost all of it in ``ml_dtypes`` (float8 and int4 dtypes
that the guard never needs), which ``onnx/__init__`` pulls in through ``onnx.helper``. The
scorer needs only three pieces of the wheel: the generated ``onnx_ml_pb2`` module (the
``ModelProto`` classes), and the C++ extension ``onnx_cpp2py_export`` (the checker and the op
schemas). This module loads exactly those two files *from the installed onnx wheel*, under
their own names in ``sys.modules``, so that a later ``import onnx`` in the same process reuses
them (one set of message classes, the extension initialized once). If ``onnx`` is already
imported, or the wheel's layout is not the expected one, it simply uses ``onnx`` itself.

The API mirrors the subset of ``onnx`` the guard and the counter use, so that
``from occam.scoring import onnxproto as onnx`` is a drop-in replacement there:
``ModelProto`` & co., ``checker.check_model``, ``defs.get_schema``, ``helper.tensor_dtype_to_string``,
``load`` and ``load_from_string``. The checks are the same C++ code either way.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType, SimpleNamespace
from typing import Any

__all__ = ["AttributeProto", "FunctionProto", "GraphProto", "ModelProto", "NodeProto", "SparseTensorProto",
           "TensorProto", "ValueInfoProto", "attribute_default", "checker", "defs", "helper", "load",
           "load_from_string", "lite"]

_SUBMODULES = ("onnx_ml_pb2", "onnx_cpp2py_export")


class _AttachOnImport(importlib.abc.MetaPathFinder):
    """When ``onnx`` itself is imported later, set ``onnx.onnx_ml_pb2`` and ``onnx.onnx_cpp2py_export``
    as attributes of the package (Python sets them only for submodules it loads itself)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname != "onnx":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        run = loader.exec_module
        finder = self

        def exec_module(module: ModuleType) -> None:
            run(module)
            for sub in _SUBMODULES:
                if f"onnx.{sub}" in sys.modules and not hasattr(module, sub):
                    setattr(module, sub, sys.modules[f"onnx.{sub}"])
            if finder in sys.meta_path:  # its work is done
                sys.meta_path.remove(finder)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _load_file(name: str, path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _load_lite() -> tuple[ModuleType, ModuleType]:
    """(onnx_ml_pb2, onnx_cpp2py_export) loaded from the onnx wheel without running onnx/__init__."""
    spec = importlib.util.find_spec("onnx")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("onnx is not installed")
    folder = list(spec.submodule_search_locations)[0]
    pb2 = sys.modules.get("onnx.onnx_ml_pb2") or _load_file("onnx.onnx_ml_pb2", os.path.join(folder, "onnx_ml_pb2.py"))
    ext = sys.modules.get("onnx.onnx_cpp2py_export")
    if ext is None:
        suffixes = importlib.machinery.EXTENSION_SUFFIXES
        names = [f"onnx_cpp2py_export{s}" for s in suffixes if os.path.exists(os.path.join(folder, f"onnx_cpp2py_export{s}"))]
        if not names:
            raise ImportError("onnx's C++ extension not found")
        ext = _load_file("onnx.onnx_cpp2py_export", os.path.join(folder, names[0]))
    if not any(isinstance(f, _AttachOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _AttachOnImport())
    return pb2, ext


def _resolve() -> tuple[Any, Any, bool]:
    if "onnx" in sys.modules:
        import onnx
        import onnx.onnx_cpp2py_export as ext

        return onnx, ext, False
    try:
        pb2, ext = _load_lite()
    except Exception:  # an unexpected wheel layout: the ordinary, slower import
        import onnx
        import onnx.onnx_cpp2py_export as ext

        return onnx, ext, False
    return pb2, ext, True


_pb, _ext, lite = _resolve()

ModelProto = _pb.ModelProto
GraphProto = _pb.GraphProto
NodeProto = _pb.NodeProto
TensorProto = _pb.TensorProto
SparseTensorProto = _pb.SparseTensorProto
AttributeProto = _pb.AttributeProto
ValueInfoProto = _pb.ValueInfoProto
FunctionProto = _pb.FunctionProto

_MAX_PROTOBUF = 2**31  # onnx.checker.MAXIMUM_PROTOBUF


def check_model(model: Any, full_check: bool = False, skip_opset_compatibility_check: bool = False,
                check_custom_domain: bool = False) -> None:
    """``onnx.checker.check_model`` for a ModelProto or its bytes (the same C++ checker)."""
    data = model if isinstance(model, bytes) else model.SerializeToString()
    if len(data) > _MAX_PROTOBUF:
        raise ValueError("This protobuf of onnx model is too large (>2GB). Call check_model with model path instead.")
    _ext.checker.check_model(data, full_check, skip_opset_compatibility_check, check_custom_domain)


def get_schema(op_type: str, max_inclusive_version: int, domain: str = "") -> Any:
    """``onnx.defs.get_schema``: the op's schema at ``max_inclusive_version``; raises for an unknown op."""
    return _ext.defs.get_schema(op_type, max_inclusive_version, domain)


def attribute_default(attr: Any) -> Any:
    """An ``OpSchema.Attribute``'s default as an AttributeProto (what ``onnx`` exposes as ``default_value``)."""
    proto = AttributeProto()
    proto.ParseFromString(attr._default_value)
    return proto


def tensor_dtype_to_string(elem_type: int) -> str:
    """``onnx.helper.tensor_dtype_to_string``: e.g. ``TensorProto.FLOAT``."""
    return f"TensorProto.{TensorProto.DataType.Name(elem_type)}"


def load_from_string(data: bytes) -> Any:
    model = ModelProto()
    model.ParseFromString(data)
    return model


def _has_external_data(model: Any) -> bool:
    stack = [model.graph]
    while stack:
        g = stack.pop()
        if any(t.data_location == TensorProto.EXTERNAL for t in g.initializer):
            return True
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t") and a.t.data_location == TensorProto.EXTERNAL:
                    return True
                stack.extend([a.g] if a.HasField("g") else [])
                stack.extend(a.graphs)
    return False


def load(path: str | os.PathLike, load_external_data: bool = True) -> Any:
    """``onnx.load``: parse an ONNX file; a file that refers to external data is handed to ``onnx.load``
    itself, which reads that data from beside the file."""
    with open(path, "rb") as f:
        model = load_from_string(f.read())
    if load_external_data and _has_external_data(model):
        import onnx

        return onnx.load(os.fspath(path), load_external_data=True)
    return model


checker = SimpleNamespace(check_model=check_model)
defs = SimpleNamespace(get_schema=get_schema)
helper = SimpleNamespace(tensor_dtype_to_string=tensor_dtype_to_string)
