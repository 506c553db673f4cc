"""GGUF files: checked, keyed by content, dequantised once into a cached safetensors model dir.

The cache dir of a GGUF file is named after its content (sha256), not its file name: a different file under the
same name (another quantisation, a truncated download, junk) gets its own conversion instead of the weights cached
for the name. Hashing reads the whole file once per load, a small cost beside reading the weights themselves.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ..atomic import atomic_dir
from ..errors import ClearError
from .loading import loading_errors, no_progress_bars

MAGIC = b"GGUF"           # the first four bytes of every GGUF file
KEY_CHARS = 32            # hex digits of the sha256 in the cache dir name (128 bits)


def check_gguf(path: str | os.PathLike) -> Path:
    """The path, if it is a readable file that starts with the GGUF magic bytes; else a ClearError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ClearError(f"GGUF file {path} does not exist")
    try:
        with path.open("rb") as fh:
            head = fh.read(len(MAGIC))
    except OSError as exc:
        raise ClearError(f"GGUF file {path} cannot be read: {exc.strerror or exc}") from exc
    if head != MAGIC:
        raise ClearError(f"{path} is not a GGUF file (it does not start with the bytes 'GGUF')")
    return path


def content_key(path: str | os.PathLike) -> str:
    """The first KEY_CHARS hex digits of the file's sha256."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()[:KEY_CHARS]


def cache_dir(path: str | os.PathLike, cache_root: str | os.PathLike, name: str | None = None) -> Path:
    """Where the converted copy of this GGUF file lives: cache_root / "<name or file stem>-<content key>"."""
    path = check_gguf(path)
    return Path(cache_root) / f"{name or path.stem}-{content_key(path)}"


def converted(path: str | os.PathLike, cache_root: str | os.PathLike, name: str | None = None) -> Path:
    """The safetensors model dir of a GGUF file, converted on first use (see `cache_dir`, `convert_gguf`)."""
    out_dir = cache_dir(path, cache_root, name)
    with loading_errors(f"GGUF file {path}"), no_progress_bars():
        return convert_gguf(path, out_dir)


def convert_gguf(gguf_file: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Dequantise a GGUF file once into a safetensors model dir; later loads of `out_dir` skip this step.

    The copy is written to a temp dir beside `out_dir` and renamed into place, so a killed or concurrent conversion
    never leaves a half-written model where a loader would find it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file, out_dir = Path(gguf_file), Path(out_dir)
    if (out_dir / "config.json").exists():
        return out_dir
    kw = dict(gguf_file=gguf_file.name, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, dtype=torch.float32, **kw)
    # The weights are already dequantised to fp32; the quantizer and its config would make the copy load as GGUF.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out_dir, keep="config.json") as tmp:  # a concurrent conversion that finished first is kept
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out_dir
