"""occam.scoring.onnxproto: the guard's view of ONNX without ``import onnx`` (and its ml_dtypes)."""

from __future__ import annotations

import json
import subprocess
import sys

import onnx
from onnx import TensorProto, helper

from occam.scoring import onnxproto


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_scoring_path_does_not_import_onnx_or_ml_dtypes():
    got = _run("import json, sys\n"
               "from occam.scoring import inspect_model, score_model\n"
               "from occam.scoring import onnxproto\n"
               "print(json.dumps({'lite': onnxproto.lite, 'onnx': 'onnx' in sys.modules,\n"
               "                  'ml_dtypes': 'ml_dtypes' in sys.modules}))")
    assert got == {"lite": True, "onnx": False, "ml_dtypes": False}


def test_a_later_import_onnx_shares_the_classes_and_extension():
    got = _run("import json\n"
               "from occam.scoring import onnxproto\n"
               "import importlib.util, sys\n"
               "assert importlib.util.find_spec('onnx') is not None and 'onnx' not in sys.modules\n"
               "import onnx, onnx.checker, onnx.helper\n"
               "m = onnx.helper.make_model(onnx.helper.make_graph([], 'g', [], []))\n"
               "print(json.dumps({'same': onnx.ModelProto is onnxproto.ModelProto,\n"
               "                  'attr': onnx.onnx_ml_pb2 is not None and onnx.onnx_cpp2py_export is not None,\n"
               "                  'proto': isinstance(m, onnxproto.ModelProto),\n"
               "                  'hook_gone': not any(type(f).__name__ == '_AttachOnImport' for f in sys.meta_path)}))")
    assert got == {"same": True, "attr": True, "proto": True, "hook_gone": True}


def _relu_model(ir_version: int = 10) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=ir_version).SerializeToString()


def test_checker_schema_and_dtype_names_agree_with_onnx():
    model = onnxproto.load_from_string(_relu_model())
    onnxproto.checker.check_model(model, full_check=True)  # a valid model passes
    broken = onnxproto.load_from_string(_relu_model())
    broken.graph.node[0].input[0] = "missing"
    for check in (onnx.checker.check_model, onnxproto.checker.check_model):
        try:
            check(broken, full_check=True)
        except Exception as exc:
            assert "missing" in str(exc)
        else:
            raise AssertionError("the checker accepted a node reading an undefined value")
    schema = onnxproto.defs.get_schema("LeakyRelu", 20, "")
    alpha = onnxproto.attribute_default(schema.attributes["alpha"])
    assert alpha.f == onnx.defs.get_schema("LeakyRelu", 20, "").attributes["alpha"].default_value.f
    assert onnxproto.helper.tensor_dtype_to_string(TensorProto.FLOAT16) == helper.tensor_dtype_to_string(TensorProto.FLOAT16)


def test_load_reads_a_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(_relu_model())
    assert onnxproto.load(path).graph.node[0].op_type == "Relu"
