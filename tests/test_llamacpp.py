"""The one place that decides how llama.cpp loads (rag/generate/runtime.py), tested with faked
/proc/cpuinfo files: no AMX machine is needed to test the AMX rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.generate import runtime as llamacpp

# Trimmed from real /proc/cpuinfo files.
SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8488C
flags\t\t: fpu vme sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""
ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme sse sse2 avx avx2 fma bmi2
"""
ONE_AMX_FLAG = ZEN3.replace("bmi2", "bmi2 amx_tile")
ICE_LAKE = ZEN3.replace("bmi2", "bmi2 avx512f avx512bw avx512_vnni")


@pytest.fixture
def cpuinfo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write a fake cpuinfo file; the override variable is unset unless a test sets it."""
    monkeypatch.delenv(llamacpp.OVERRIDE_ENV, raising=False)

    def write(text: str) -> Path:
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        return path

    return write


def test_cpu_flags_are_read_from_the_flags_line(cpuinfo) -> None:
    flags = llamacpp.cpu_flags(cpuinfo(SAPPHIRE_RAPIDS))
    assert {"amx_int8", "avx512f", "avx2"} <= flags
    assert "flags" not in flags and ":" not in flags


@pytest.mark.parametrize("text", [SAPPHIRE_RAPIDS, ONE_AMX_FLAG])
def test_extra_buffers_are_off_on_a_cpu_with_amx(cpuinfo, text: str) -> None:
    assert llamacpp.extra_buffers_allowed(cpuinfo(text)) is False


def test_extra_buffers_are_off_where_llama_cpp_runs_its_avx512_kernels(cpuinfo) -> None:
    assert llamacpp.extra_buffers_allowed(cpuinfo(ICE_LAKE)) is False


def test_extra_buffers_are_on_where_only_avx2_kernels_run(cpuinfo) -> None:
    assert llamacpp.extra_buffers_allowed(cpuinfo(ZEN3)) is True


def test_an_unreadable_cpuinfo_counts_as_no_amx(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(llamacpp.OVERRIDE_ENV, raising=False)
    missing = tmp_path / "absent"
    assert llamacpp.cpu_flags(missing) == frozenset()
    assert llamacpp.extra_buffers_allowed(missing) is True


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("0", False)])
def test_the_environment_overrides_the_cpu_rule(cpuinfo, monkeypatch, value: str, expected: bool) -> None:
    monkeypatch.setenv(llamacpp.OVERRIDE_ENV, value)
    assert llamacpp.extra_buffers_allowed(cpuinfo(SAPPHIRE_RAPIDS)) is expected
    assert llamacpp.extra_buffers_allowed(cpuinfo(ZEN3)) is expected


def test_an_unknown_override_value_is_ignored(cpuinfo, monkeypatch) -> None:
    monkeypatch.setenv(llamacpp.OVERRIDE_ENV, "yes please")
    assert llamacpp.extra_buffers_allowed(cpuinfo(SAPPHIRE_RAPIDS)) is False


@pytest.fixture
def restore_llama_defaults():
    """Put llama-cpp-python's own default-params function back after a test wraps it."""
    import llama_cpp
    import llama_cpp.llama_cpp as native

    before = native.llama_model_default_params, llama_cpp.llama_model_default_params
    yield
    native.llama_model_default_params, llama_cpp.llama_model_default_params = before


@pytest.mark.usefixtures("restore_llama_defaults")
def test_guard_sets_the_field_llama_starts_from(cpuinfo) -> None:
    import llama_cpp
    import llama_cpp.llama_cpp as native

    assert llamacpp.guard(cpuinfo(SAPPHIRE_RAPIDS)) is False
    assert native.llama_model_default_params().use_extra_bufts is False
    # The package re-export (what some callers use) is wrapped the same way.
    assert llama_cpp.llama_model_default_params().use_extra_bufts is False


@pytest.mark.usefixtures("restore_llama_defaults")
def test_guard_can_be_called_again_with_another_decision(cpuinfo, monkeypatch) -> None:
    import llama_cpp.llama_cpp as native

    original = getattr(native.llama_model_default_params, "rag_original", native.llama_model_default_params)
    llamacpp.guard(cpuinfo(SAPPHIRE_RAPIDS))
    monkeypatch.setenv(llamacpp.OVERRIDE_ENV, "1")
    assert llamacpp.guard(cpuinfo(SAPPHIRE_RAPIDS)) is True
    assert native.llama_model_default_params().use_extra_bufts is True
    # Wrapped once, not a wrapper of a wrapper.
    assert native.llama_model_default_params.rag_original is original


def test_describe_names_the_cpu_and_the_decision(monkeypatch) -> None:
    monkeypatch.setenv(llamacpp.OVERRIDE_ENV, "0")
    line = llamacpp.describe()
    assert line.startswith("CPU ") and "extra buffer types (weight repacking) off" in line
    assert "\n" not in line


@pytest.mark.integration
@pytest.mark.usefixtures("restore_llama_defaults")
def test_the_bundled_model_loads_with_the_chosen_parameters_and_answers() -> None:
    from rag.core.bundled import gguf_path
    from rag.generate.base import GenerationSettings
    from rag.generate.llamacpp import LlamaCppGenerator

    generator = LlamaCppGenerator(gguf_path("qwen-1.5b"), GenerationSettings(threads=2), name="qwen-1.5b")
    assert generator._llm.model_params.use_extra_bufts is llamacpp.extra_buffers_allowed()
    words = "".join(
        generator.stream([{"role": "user", "content": "What is the capital of France? One word."}], max_tokens=8)
    )
    assert "paris" in words.lower()
