"""What runs the network, by name: the runtimes an index can be built with, and what `auto` means on this machine.

- `tensorflow`: the Keras model in float32, on whichever backend Keras runs (the GPU path).
- `tensorflow-bf16`: the same model with its convolutions in bfloat16 (`recommender.bfloat16`), for CPUs that
  compute bfloat16 natively.
- `tflite-fp32`, `tflite-int8`, `tflite-int8-float-stem`: the network converted to LiteRT (`recommender.litert`).

Vectors from two runtimes are close but not equal, so the runtime is part of an index's fingerprint: an index only
serves queries extracted by the runtime that built it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from recommender.errors import BadInput
from recommender.search import has_accelerator

logger = logging.getLogger(__name__)

TENSORFLOW = "tensorflow"
TENSORFLOW_BF16 = "tensorflow-bf16"
TFLITE_FP32 = "tflite-fp32"
TFLITE_INT8 = "tflite-int8"
TFLITE_INT8_FLOAT_STEM = "tflite-int8-float-stem"  # int8 but for the stem (recommender.litert_mixed)
AUTO = "auto"
KERAS_RUNTIMES = (TENSORFLOW, TENSORFLOW_BF16)
LITERT_RUNTIMES = (TFLITE_FP32, TFLITE_INT8, TFLITE_INT8_FLOAT_STEM)
RUNTIMES = (*KERAS_RUNTIMES, *LITERT_RUNTIMES)
# Names no longer offered, with what to say to whoever still asks for one (an old setting, an old index).
RETIRED = {
    "tflite-int8-mixed": "it was replaced by tflite-int8-float-stem (faster); rebuild indexes made with it "
    "(`wanderlens index`)",
}
# What `auto` gives a new index on a CPU that computes bfloat16 natively (on any other CPU: TensorFlow). A runtime
# becomes it when it costs at most 0.005 in either dev figure, chosen on one half of the dev sets and confirmed on
# the other (README, "CPU runtimes"): bfloat16 with a float32 stem is confirmed; no int8 variant measured is.
CPU_DEFAULT = TENSORFLOW_BF16
# /proc/cpuinfo flags of CPUs with bfloat16 arithmetic: x86 (AVX512-BF16, AMX) and Arm (BF16 instructions).
_BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def check_runtime(name: str) -> str:
    if name in RETIRED:
        raise BadInput(f"the runtime {name} is no longer offered: {RETIRED[name]}. Received: runtime={name!r}")
    if name not in (*RUNTIMES, AUTO):
        raise BadInput(f"unknown runtime; choose one of {', '.join((AUTO, *RUNTIMES))}. Received: runtime={name!r}")
    return name


def cpu_computes_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU has bfloat16 instructions. Without them bfloat16 is emulated, slower than float32."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features") and _BFLOAT16_FLAGS & set(value.split()):
            return True
    return False


def _runs_here(runtime: str) -> bool:
    if runtime in KERAS_RUNTIMES:
        return True
    from recommender.litert import interpreter_class

    return interpreter_class() is not None


def _runs_well_on_this_cpu(runtime: str) -> bool:
    """bfloat16 only where the CPU computes it (emulated, it is slower than float32); the others where they run."""
    return cpu_computes_bfloat16() if runtime == TENSORFLOW_BF16 else _runs_here(runtime)


def resolve_runtime(name: str, *, index_runtime: str | None = None) -> str:
    """What runs the network. A name other than `auto` is kept as it is: a mismatch with the index must be seen.

    `auto` serves an index (``index_runtime``) with the runtime that built it, when this machine can run it: an
    index built with `--runtime tflite-int8-float-stem` needs no setting in the worker, and one built before a
    default changes keeps working. A new index gets TensorFlow on a GPU (the GPU path is unchanged) and
    `CPU_DEFAULT` on a CPU that can run it well; TensorFlow otherwise.
    """
    check_runtime(name)
    if name != AUTO:
        return name
    if index_runtime in RUNTIMES and _runs_here(index_runtime):
        if index_runtime in LITERT_RUNTIMES and has_accelerator():
            logger.warning(
                "the index was built with %s, a CPU runtime, so the GPU is not used; to use it, rebuild the index "
                "with `wanderlens index --runtime tensorflow`",
                index_runtime,
            )
        elif index_runtime == TENSORFLOW_BF16 and not has_accelerator() and not cpu_computes_bfloat16():
            logger.warning(
                "the index was built with %s, but this CPU has no bfloat16 instructions, so it runs slower than "
                "float32; rebuild the index with `wanderlens index --runtime tensorflow` to serve it faster here",
                index_runtime,
            )
        return index_runtime
    if has_accelerator():
        return TENSORFLOW
    return CPU_DEFAULT if _runs_well_on_this_cpu(CPU_DEFAULT) else TENSORFLOW
