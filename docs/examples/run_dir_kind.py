"""An example model kind: a training-run directory, with a checkpoint axis.

The directory holds ``run.json`` (``{"task": "digits", "checkpoints": ["epoch1.onnx", "epoch2.onnx"]}``)
and the ONNX files it lists, in training order. The kind reads the task from the run (so
``open_model(path)`` needs no task) and opens the last checkpoint; ``model.checkout(i)`` shows
another and every view follows. It produces the image-classifier model object, so the built-in
views apply; a kind with a new model object (a toy transformer) would also register views whose
``kinds`` name it.

tests/lens/test_view_contract.py imports this file, registers the kind and opens a run with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from occam.errors import OccamError


class TrainingRunKind:
    name = "training-run"
    title = "Training run"
    description = "a directory with run.json and the ONNX checkpoints it lists"

    def detect(self, source: Any) -> bool:
        return isinstance(source, str | Path) and (Path(source) / "run.json").is_file()

    def open(self, source: Any, task: Any = None, **kwargs: Any) -> Any:
        from occam.lens.model import LensModel
        from occam.tasks import get_task

        root = Path(source)
        run = json.loads((root / "run.json").read_text())
        names = run.get("checkpoints") or []
        if not names:
            raise OccamError(f"{root / 'run.json'} lists no checkpoints", 'add "checkpoints": ["epoch1.onnx", ...]')
        missing = [n for n in names if not (root / n).is_file()]
        if missing:
            raise OccamError(f"checkpoint {missing[0]} of {root} is missing", "list only files in the directory")
        t = get_task(task or run["task"])
        checkpoints = [(Path(n).stem, (root / n).read_bytes()) for n in names]
        return LensModel(checkpoints[-1][1], t, name=kwargs.pop("name", root.name), checkpoints=checkpoints, **kwargs)
