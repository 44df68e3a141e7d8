"""A sentence-transformers model's question path run by onnxruntime.

A question is one short sequence on the critical path of every search. Through the model's own modules in torch,
MiniLM takes ~10.7 ms on one core (p50, tokenizing included); the same graph exported to ONNX and run by
onnxruntime takes ~5.1 ms, with the same vectors (cosine 1.0000). This replaced a TorchScript trace (~6.9 ms;
TorchScript is deprecated).

The export runs once per model folder and machine, from the weights on disk (no model hub): torch.export's ONNX
exporter writes `<cache_dir>/onnx/<model>-<folder>-<fingerprint>.onnx` (~10 s for MiniLM), atomically, so two
processes exporting at once cannot leave half a file. Every load is checked against the eager model on probe
questions of other lengths; a model that does not export, a missing onnxruntime, or any disagreement leaves the
caller on its eager path.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the exported graph's inputs or outputs change: old cache files are then ignored
# Questions of different lengths on which the exported model must agree with the eager one.
PROBES = (
    "When did the night ferry to the islands start running again?",
    "Who?",
    "How many volunteers had registered five days after the city opened the list, according to the mayor of the "
    "harbour town that organised the clean-up, and on which date did she say so?",
)

Features = dict[str, Any]  # what the model's tokenizer returns: torch tensors by input name
Forward = Callable[[Features], np.ndarray]  # features of one question -> its (1, dim) embedding, not normalised


def fingerprint(model_dir: Path) -> str:
    """Names, sizes and modification times of the model's files, with the versions that shape the graph."""
    import onnxruntime
    import torch

    digest = hashlib.sha256(f"{FORMAT} {torch.__version__} {onnxruntime.__version__}".encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(model_dir)} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def onnx_query_forward(model: Any, model_dir: Path, name: str, cache_dir: Path, *, threads: int,
                       preprocess: Callable[[list[str]], Features], eager: Callable[[Features], Any],
                       probes: Sequence[str] = PROBES) -> Forward | None:
    """The question path through onnxruntime, exported on first use and cached; None when it cannot be had (the
    reason is logged) or when it disagrees with `eager` on the probe questions."""
    try:
        import onnxruntime as ort
    except ImportError:
        log.info("onnxruntime is not installed: questions are embedded by torch (pip install -e '.[models]')")
        return None
    try:
        place = hashlib.sha256(str(Path(model_dir).resolve()).encode()).hexdigest()[:8]  # which install's model
        target = Path(cache_dir) / "onnx" / f"{_safe(name)}-{place}-{fingerprint(model_dir)}.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # never spin on a core BM25 uses
        for attempt in (1, 2):
            if not target.is_file():
                _export(model, preprocess, target)
            try:
                session = ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
                break
            except Exception:
                if attempt == 2:
                    raise
                log.warning("the cached ONNX file %s does not load; exporting it again", target)
                target.unlink(missing_ok=True)
        inputs = [i.name for i in session.get_inputs()]

        def forward(features: Features) -> np.ndarray:
            feed = {k: features[k].numpy().astype(np.int64, copy=False) for k in inputs}
            return np.asarray(session.run(None, feed)[0], dtype=np.float32)

        for probe in probes:
            features = preprocess([probe])
            got, want = forward(features), np.asarray(eager(features), dtype=np.float32)
            if got.shape != want.shape or not np.allclose(got, want, atol=1e-4, rtol=1e-3):
                log.warning("the ONNX export of %s disagrees with the model on %r: questions use torch", name, probe)
                return None
        return forward
    except Exception as exc:  # a model the exporter cannot handle: the eager path is correct, only slower
        log.warning("questions are embedded by torch: the ONNX export of %s failed (%s: %s)",
                    name, type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
        return None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "model"


def _export(model: Any, preprocess: Callable[[list[str]], Features], target: Path) -> None:
    """The whole model (transformer, pooling), tensors in and sentence embedding out, for one question of any
    length, written to target through a temporary file in the same folder."""
    import torch

    log.warning("preparing the embedder's question path for onnxruntime, once for this model (~10 s): %s", target)
    example = preprocess([PROBES[0]])
    keys = [k for k, v in example.items() if isinstance(v, torch.Tensor)]
    fixed = {k: v for k, v in example.items() if k not in keys}

    class Tensors(torch.nn.Module):  # what the exporter can record: positional tensors in, one tensor out
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model({**fixed, **dict(zip(keys, tensors))})["sentence_embedding"]

    seq = torch.export.Dim("tokens", min=1, max=max(2, int(getattr(model, "max_seq_length", 512) or 512)))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(Tensors().eval(), tuple(example[k] for k in keys), str(tmp), dynamo=True,
                              input_names=keys, output_names=["sentence_embedding"],
                              dynamic_shapes=(tuple({1: seq} for _ in keys),), external_data=False,
                              optimize=True, verbose=False)
        os.chmod(tmp, 0o644)  # mkstemp made it private; the cache is readable like the model it came from
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _remove_stale(target)


def _remove_stale(target: Path) -> None:
    """Exports of this model folder for other weights or versions (~90 MB each), and temporary files of exports
    killed over an hour ago: a loaded session keeps its own copy, so a running process loses nothing. Another
    install's export (another folder, e.g. a second virtualenv sharing the cache) is its own and stays."""
    ours = re.compile(re.escape(target.name.rsplit("-", 1)[0]) + r"-[0-9a-f]{16}\.onnx(\..+\.tmp)?")
    for path in target.parent.iterdir():
        if path == target or not ours.fullmatch(path.name):
            continue
        if path.suffix == ".onnx" or time.time() - path.stat().st_mtime > 3600:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter prints progress and warns about every deprecated attribute it reads; the logs stay readable."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir",
                                              "sentence_transformers", "transformers")]
    levels = [lg.level for lg in loggers]
    devnull = open(os.devnull, "w")
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(devnull):
                yield
    finally:
        devnull.close()
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
