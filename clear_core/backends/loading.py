"""Loading a transformers model from a local dir or a HF hub id, with errors a user can act on.

Models load with trust_remote_code=False and safetensors weights only. Whatever stops a load (custom code the model
needs, a missing or broken file, an id the hub does not know) becomes a one-line ClearError naming the model. A hub
id is looked up in the local HF cache first; when it is not there, the network is tried only if the hub answers a
quick check, so an offline machine fails at once instead of after the hub client's retries.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from ..errors import ClearError

HUB_CHECK_TIMEOUT_S = 3.0
# What a hub download fetches: configs, safetensors weights, tokenizer files. No .bin pickles, no code.
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
MAX_REASON = 240  # characters of the underlying message kept in the one-line error


@contextmanager
def loading_errors(what: str):
    """Turn any failure inside transformers or the hub client into ClearError("<what> could not be loaded: ...")."""
    try:
        yield
    except ClearError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever breaks inside the libraries, this model does not load
        raise ClearError(f"{what} could not be loaded: {reason(exc)}") from exc


@contextmanager
def no_progress_bars():
    """transformers' progress bars off for a local load: a bar for reading a local file is noise, and one printed
    before a failure would break the CLI's one-line error."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def reason(exc: BaseException) -> str:
    """The cause of a failed load on one short line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "trust_remote_code" in text:
        return "it needs custom code shipped with the model (trust_remote_code), which CLEAR Studio never runs"
    return text if len(text) <= MAX_REASON else text[:MAX_REASON - 3] + "..."


def load_dir(path: str | os.PathLike, device: str = "auto", dtype: str = "auto", name: str | None = None):
    """Load a local model dir holding safetensors weights, a config and a tokenizer (an HFBackend)."""
    from .hf import HFBackend, resolve_device, resolve_dtype

    path = Path(path)
    if not any(path.glob("*.safetensors")):
        raise ClearError(f"model dir {path} holds no .safetensors weights (only safetensors or GGUF files are loaded)")
    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    with loading_errors(f"model '{name}'" if name else f"model dir {path}"), no_progress_bars():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, trust_remote_code=False,
                                                     dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        return HFBackend(model.to(device).eval(), tokenizer, name or path.name, device)


def load_hub(model_id: str, device: str = "auto", dtype: str = "auto"):
    """Load a HF hub model id: from the local HF cache, else downloaded when the hub can be reached."""
    return load_dir(hub_snapshot(model_id), device, dtype, name=model_id)


def hub_snapshot(model_id: str) -> Path:
    """The local snapshot dir of a hub model (config, tokenizer, safetensors weights), downloaded if needed."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.utils import LocalEntryNotFoundError

    what = f"model '{model_id}'"
    with loading_errors(what):
        try:
            local = Path(snapshot_download(model_id, allow_patterns=HUB_FILES, local_files_only=True))
        except LocalEntryNotFoundError:
            local = None
    if local is not None and any(local.glob("*.safetensors")):
        return local
    if constants.HF_HUB_OFFLINE:
        raise ClearError(f"{what} is not in the local Hugging Face cache and the hub is switched off (HF_HUB_OFFLINE); "
                         "pass a local model dir or .gguf file, or download it once online")
    if not hub_reachable(constants.ENDPOINT):
        raise ClearError(f"{what} is not in the local Hugging Face cache and {constants.ENDPOINT} cannot be reached "
                         "(offline?); pass a local model dir or .gguf file, or download it once online")
    with loading_errors(what):
        return Path(snapshot_download(model_id, allow_patterns=HUB_FILES))


def hub_reachable(endpoint: str, timeout: float = HUB_CHECK_TIMEOUT_S) -> bool:
    """Whether the hub answers at all (any HTTP status counts) within `timeout` seconds; honours *_proxy settings."""
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True
