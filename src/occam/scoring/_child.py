"""The inference child: runs an ONNX model on uint8 images and returns float32 logits.

This module is what the child process executes (and what the forkserver pre-imports). It
imports only NumPy and onnxruntime. Its entry point takes the model bytes, the images and
the limits, and nothing else: the child never sees labels.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import numpy as np
import onnxruntime as ort

from occam.limits import apply_limits, drop_network


def default_batch_size(sample_elems: int) -> int:
    """About 4 M input floats (16 MiB) per batch."""
    return max(1, 4_000_000 // max(1, sample_elems))


def run(conn, model_bytes: bytes, images: np.ndarray, threads: int, memory_mb: int | None,
        cpu_seconds: int | None, batch_size: int | None) -> None:
    """Child entry point. Sends ("ok", logits, info) or ("error", kind, message, info) on ``conn``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills us
    info: dict[str, Any] = {"pid": os.getpid(), "started_at": time.time()}
    try:
        info["network"] = drop_network()
        info["limits"] = apply_limits(memory_mb, cpu_seconds)
        t0 = time.perf_counter()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 4  # errors come back as exceptions
        try:
            sess = ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            conn.send(("error", "load", f"onnxruntime cannot load the model: {_short(exc)}", info))
            return
        info["session_seconds"] = round(time.perf_counter() - t0, 6)
        inputs, outputs = sess.get_inputs(), sess.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            conn.send(("error", "shape", f"the model has {len(inputs)} inputs and {len(outputs)} outputs; "
                       "it must have one of each", info))
            return
        name = inputs[0].name
        run_opts = ort.RunOptions()
        run_opts.log_severity_level = 4
        n = len(images)
        bs = batch_size or default_batch_size(int(np.prod(images.shape[1:], dtype=np.int64)))
        parts: list[np.ndarray] = []
        for start in range(0, n, bs):
            x = images[start:start + bs].astype(np.float32) / np.float32(255.0)
            try:
                (y,) = sess.run(None, {name: x}, run_opts)
            except MemoryError:
                raise
            except Exception as exc:
                if _looks_like_oom(exc):
                    conn.send(("error", "memory", f"the model ran out of memory (limit {memory_mb} MiB): "
                               f"{_short(exc)}", info))
                else:
                    conn.send(("error", "run", f"the model failed while running: {_short(exc)}", info))
                return
            y = np.asarray(y)
            if y.ndim != 2 or y.shape[0] != len(x):
                conn.send(("error", "shape", f"the model returned shape {list(y.shape)} for a batch of "
                           f"{len(x)}; expected [{len(x)}, classes]", info))
                return
            parts.append(y.astype(np.float32, copy=False))
        logits = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        info["run_seconds"] = round(time.perf_counter() - t0 - info["session_seconds"], 6)
        conn.send(("ok", logits, info))
    except MemoryError:
        try:
            conn.send(("error", "memory", "the model ran out of memory (memory limit reached)", info))
        except Exception:
            pass
    except Exception as exc:
        try:
            conn.send(("error", "crash", f"the inference process failed: {_short(exc)}", info))
        except Exception:
            pass
    finally:
        try:
            conn.close()
        except Exception:
            pass


def _looks_like_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(k in text for k in ("bad_alloc", "out of memory", "failed to allocate", "allocate memory",
                                   "cannot allocate"))


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500] or type(exc).__name__
