"""Runtime names and what `auto` means (recommender.runtimes): the index's own runtime first, then this machine's."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from recommender import litert, runtimes
from recommender.errors import BadInput


def test_runtime_names_are_checked() -> None:
    from worker.settings import WorkerSettings

    with pytest.raises(BadInput, match="choose one of auto, tensorflow"):
        runtimes.check_runtime("tflite-int4")
    with pytest.raises(ValidationError):
        WorkerSettings(runtime="tflite-int4")
    assert runtimes.resolve_runtime("tflite-int8") == "tflite-int8"
    assert runtimes.resolve_runtime("auto") in runtimes.RUNTIMES
    # Every runtime is a worker setting too: the two lists cannot drift apart.
    for name in runtimes.RUNTIMES:
        assert WorkerSettings(runtime=name).runtime == name
    # A retired name says what replaced it, to the CLI's library and to the worker's settings alike.
    with pytest.raises(BadInput, match="no longer offered: it was replaced by tflite-int8-float-stem"):
        runtimes.check_runtime("tflite-int8-mixed")
    with pytest.raises(ValidationError, match="replaced by tflite-int8-float-stem"):
        WorkerSettings(runtime="tflite-int8-mixed")


@pytest.mark.parametrize(
    ("cpuinfo", "computes"),
    [
        ("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16 vaes\n", True),
        ("processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_tile amx_bf16 amx_int8\n", True),
        ("processor\t: 0\nflags\t\t: fpu sse4_2 avx2 avx512f avx512_vnni\n", False),
        ("processor\t: 0\nFeatures\t: fp asimd sve i8mm bf16\n", True),  # Arm: Graviton 3, Neoverse V1
        ("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32\n", False),
        ("model name\t: has avx512_bf16 in its name only\n", False),
    ],
)
def test_bfloat16_instructions_are_read_from_the_cpu_flags(tmp_path: Path, cpuinfo: str, computes: bool) -> None:
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert runtimes.cpu_computes_bfloat16(tmp_path / "cpuinfo") is computes


def test_no_cpuinfo_means_no_bfloat16(tmp_path: Path) -> None:
    assert runtimes.cpu_computes_bfloat16(tmp_path / "absent") is False


def test_auto_serves_an_index_with_its_own_runtime(monkeypatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(runtimes, "has_accelerator", lambda: False)
    monkeypatch.setattr(runtimes, "cpu_computes_bfloat16", lambda: True)
    # A new index on a CPU with bfloat16 instructions: the CPU default, which passed the split rule.
    assert runtimes.resolve_runtime("auto") == runtimes.CPU_DEFAULT == "tensorflow-bf16"
    for built_with in runtimes.RUNTIMES:
        assert runtimes.resolve_runtime("auto", index_runtime=built_with) == built_with
    # Named explicitly, a runtime is kept whatever the index says: the mismatch is then refused, not followed.
    assert runtimes.resolve_runtime("tensorflow", index_runtime="tflite-int8") == "tensorflow"
    # An index of a retired runtime cannot be served as it is: auto gives the default, and the index refuses it.
    assert runtimes.resolve_runtime("auto", index_runtime="tflite-int8-mixed") == "tensorflow-bf16"

    # Without bfloat16 instructions a new index gets float32; a bfloat16 index is still served as it was built
    # (its vectors are bfloat16's), with a warning that says how to serve it faster here.
    monkeypatch.setattr(runtimes, "cpu_computes_bfloat16", lambda: False)
    assert runtimes.resolve_runtime("auto") == "tensorflow"
    with caplog.at_level("WARNING", logger="recommender.runtimes"):
        assert runtimes.resolve_runtime("auto", index_runtime="tensorflow-bf16") == "tensorflow-bf16"
    assert "no bfloat16 instructions" in caplog.text and "--runtime tensorflow" in caplog.text
    caplog.clear()

    monkeypatch.setattr(runtimes, "has_accelerator", lambda: True)
    assert runtimes.resolve_runtime("auto") == "tensorflow"
    with caplog.at_level("WARNING", logger="recommender.runtimes"):
        assert runtimes.resolve_runtime("auto", index_runtime="tensorflow-bf16") == "tensorflow-bf16"
        assert caplog.text == ""  # a GPU computes bfloat16
        assert runtimes.resolve_runtime("auto", index_runtime="tflite-int8") == "tflite-int8"
    assert "the GPU is not used" in caplog.text and "--runtime tensorflow" in caplog.text

    monkeypatch.setattr(runtimes, "has_accelerator", lambda: False)
    monkeypatch.setattr(runtimes, "cpu_computes_bfloat16", lambda: True)
    monkeypatch.setattr(litert, "interpreter_class", lambda: None)  # no LiteRT here: a Keras runtime serves it
    assert runtimes.resolve_runtime("auto", index_runtime="tflite-int8") == "tensorflow-bf16"
    monkeypatch.setattr(runtimes, "CPU_DEFAULT", "tflite-int8-float-stem")  # had an int8 runtime passed the rule
    assert runtimes.resolve_runtime("auto") == "tensorflow"  # ... it still needs an interpreter
