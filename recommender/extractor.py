"""Photos in, L2-normalised fingerprints out: the hot path of indexing and of every query.

``model.predict`` costs 70-110 ms of set-up per call, more than the network itself at batch 1, so inference runs
through one compiled step per fixed batch size ("bucket"): a batch is split into bucket-sized chunks and the last
one is padded, so the number of traced graphs stays small and every one of them is warmed up before serving.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
from keras import ops

from recommender.backbones import LoadedBackbone
from recommender.fingerprint import BackboneFingerprint, ExtractionOptions
from recommender.images import load_for_model
from recommender.runtimes import KERAS_RUNTIMES, TENSORFLOW, TENSORFLOW_BF16

logger = logging.getLogger(__name__)

DEFAULT_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32)  # fine enough that padding wastes little
DEFAULT_HINTS = 3


@dataclass(frozen=True)
class SceneHint:
    """One of the classifier's top labels for a photo: what it "looks like"."""

    label: str
    probability: float


@dataclass(frozen=True)
class Embedded:
    vectors: np.ndarray  # (n, dim) float32, unit length
    hints: list[list[SceneHint]]  # per photo; empty lists when the backbone has no classifier


class _ExpectedRetracing(logging.Filter):
    """TensorFlow warns when several functions are traced in a row; one step per batch bucket does exactly that,
    once, at warm-up."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def compile_for_backend(model: keras.Model, finish: Callable[[dict[str, object]], object]) -> Callable[..., object]:
    """One compiled inference step, ``images -> finish(model(images))``, for whichever backend Keras runs on.

    On JAX the weights are passed in as arguments (``stateless_call``): closed over, they would be baked into
    every compiled program as constants, a copy per batch size, and later weight changes would go unseen.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def pure(trainable: list[object], non_trainable: list[object], images: object) -> object:
            outputs, _ = model.stateless_call(trainable, non_trainable, ops.cast(images, "float32"), training=False)
            return finish(outputs)

        jitted = jax.jit(pure)

        def step(images: object) -> object:
            return jitted(
                [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables], images
            )

        return step

    def forward(images: object) -> object:
        return finish(model(ops.cast(images, "float32"), training=False))

    if backend == "tensorflow":
        import tensorflow as tf

        tf_logger = logging.getLogger("tensorflow")
        if not any(isinstance(f, _ExpectedRetracing) for f in tf_logger.filters):
            tf_logger.addFilter(_ExpectedRetracing())
        return tf.function(forward)
    if backend == "torch":
        import torch

        def no_grad(images: object) -> object:
            with torch.inference_mode():
                return forward(images)

        return no_grad
    return forward


class Extractor:
    """Holds a backbone and its compiled inference steps; safe to call from one thread at a time.

    ``runtime``: "tensorflow" (Keras, any backend, the GPU path), "tensorflow-bf16" (the same, its convolutions in
    bfloat16, `recommender.bfloat16`), "tflite-fp32", "tflite-int8" or "tflite-int8-float-stem" (the network
    converted to LiteRT and run with XNNPACK on the CPU, `recommender.litert`), or "auto"
    (`recommender.runtimes.resolve_runtime`). A converted model is cached under ``cache_dir`` (the weights cache
    when None).
    The runtime is part of the fingerprint: an index only serves queries extracted by the runtime that built it.
    """

    def __init__(
        self,
        backbone: LoadedBackbone,
        *,
        buckets: Sequence[int] = DEFAULT_BUCKETS,
        hints: int = DEFAULT_HINTS,
        runtime: str = TENSORFLOW,
        cache_dir: Path | None = None,
    ) -> None:
        if not buckets or sorted(buckets) != list(buckets) or buckets[0] < 1:
            raise ValueError(f"buckets must be increasing positive sizes. Received: buckets={buckets!r}")
        self.backbone = backbone
        self.buckets = tuple(buckets)
        self.hint_count = hints if backbone.labels else 0
        if runtime != TENSORFLOW:  # "auto" and the other names are resolved and checked there
            from recommender.runtimes import resolve_runtime

            runtime = resolve_runtime(runtime)
        self.runtime = runtime
        self._fingerprint = replace(backbone.fingerprint, runtime=runtime)
        self._steps: dict[int, Callable[[np.ndarray], object]]
        if runtime in KERAS_RUNTIMES:
            model = backbone.model
            if runtime == TENSORFLOW_BF16:
                from recommender.bfloat16 import network_in_bfloat16

                model = network_in_bfloat16(model)
            # One compiled step per bucket, each traced once: a new shape never recompiles a step in use.
            self._steps = {bucket: compile_for_backend(model, self._finish) for bucket in self.buckets}
        else:
            self._steps = self._lite_steps(cache_dir)  # type: ignore[assignment]

    def _lite_steps(self, cache_dir: Path | None) -> dict[int, Callable[[np.ndarray], object]]:
        from recommender.download import default_cache_dir
        from recommender.litert import ConversionSpec, lite_steps

        spec = ConversionSpec(
            self.backbone.fingerprint, self.options, self.runtime, include_top="logits" in self.backbone.model.output
        )
        return lite_steps(  # type: ignore[return-value]
            self.backbone.model,
            spec,
            buckets=self.buckets,
            hints=self.hint_count,
            colour_weight=self.options.colour_weight,
            cache_dir=cache_dir or default_cache_dir(),
        )

    @property
    def fingerprint(self) -> BackboneFingerprint:
        return self._fingerprint

    @property
    def input_size(self) -> int:
        return self.backbone.fingerprint.input_size

    @property
    def options(self) -> ExtractionOptions:
        return self.backbone.options

    def preprocess(self, source: bytes | bytearray | memoryview | str | os.PathLike[str]) -> np.ndarray:
        """Decode, straighten and size one photo for this backbone: uint8 (S, S, 3). Thread-safe."""
        return load_for_model(source, self.input_size, trim=self.backbone.trim_borders)

    @property
    def max_batch(self) -> int:
        return self.buckets[-1]

    def _finish(self, outputs: dict[str, object]) -> tuple[object, object, object]:
        """Unit-length embeddings and the classifier's top hints, inside the compiled step."""
        vectors = outputs["embedding"]
        vectors = vectors / ops.maximum(ops.norm(vectors, axis=-1, keepdims=True), 1e-12)
        if self.hint_count and "logits" in outputs:
            probabilities = ops.softmax(outputs["logits"], axis=-1)
            top_p, top_i = ops.top_k(probabilities, k=self.hint_count)
        else:
            top_p = ops.zeros((ops.shape(vectors)[0], 0))
            top_i = ops.zeros((ops.shape(vectors)[0], 0), dtype="int32")
        return vectors, top_p, top_i

    def warm_up(self) -> float:
        """Trace and run every bucket once, so that no user request pays for compilation.

        Returns the seconds one more pass of the largest bucket takes once compiled: how fast this machine runs
        the network right now (logged, and read by ``bench.worker_load``).
        """
        for bucket in self.buckets:
            self._run_zeros(bucket)
        started = time.perf_counter()
        self._run_zeros(self.max_batch)
        seconds = time.perf_counter() - started
        logger.info(
            "extractor %s warmed up for batch sizes %s on %s; a batch of %d takes %.1f ms here (%.0f images/s)",
            self.fingerprint.name,
            self.buckets,
            self.runtime,
            self.max_batch,
            1000 * seconds,
            self.max_batch / max(seconds, 1e-9),
        )
        return seconds

    def _run_zeros(self, bucket: int) -> None:
        size = self.input_size
        # Converting to numpy waits for the result: JAX would otherwise return before the work is done.
        for output in self._steps[bucket](np.zeros((bucket, size, size, 3), dtype=np.uint8)):  # type: ignore[attr-defined]
            ops.convert_to_numpy(output)

    def bucket_for(self, count: int) -> int:
        return next((b for b in self.buckets if b >= count), self.buckets[-1])

    def embed(self, images: np.ndarray) -> Embedded:
        """Fingerprints of a uint8 batch (n, S, S, 3) of RGB photos already sized by `images.to_model_input`."""
        expected = (self.input_size, self.input_size, 3)
        if images.dtype != np.uint8:
            raise ValueError(f"expected uint8 pixels (0..255). Received: dtype={images.dtype}")
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(f"expected a batch of shape (n, *{expected}). Received: shape={images.shape}")
        vectors: list[np.ndarray] = []
        hints: list[list[SceneHint]] = []
        for start in range(0, len(images), self.max_batch):
            chunk = images[start : start + self.max_batch]
            bucket = self.bucket_for(len(chunk))
            padded = chunk
            if bucket != len(chunk):
                padded = np.zeros((bucket, *expected), dtype=np.uint8)
                padded[: len(chunk)] = chunk
            chunk_vectors, top_p, top_i = (ops.convert_to_numpy(t) for t in self._steps[bucket](padded))
            vectors.append(np.asarray(chunk_vectors[: len(chunk)], dtype=np.float32))
            hints.extend(self._hints(top_p[: len(chunk)], top_i[: len(chunk)]))
        if not vectors:
            return Embedded(np.zeros((0, self.fingerprint.dim), dtype=np.float32), [])
        return Embedded(np.concatenate(vectors), hints)

    def _hints(self, top_p: np.ndarray, top_i: np.ndarray) -> list[list[SceneHint]]:
        labels = self.backbone.labels
        if not labels or top_i.shape[1] == 0:
            return [[] for _ in range(len(top_i))]
        return [
            [SceneHint(labels[int(i)], float(p)) for p, i in zip(row_p, row_i, strict=True)]
            for row_p, row_i in zip(top_p, top_i, strict=True)
        ]
