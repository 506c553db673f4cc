"""`--model` that cannot be loaded: one line and exit 2 from the CLI, never a traceback, never a long wait, and never
the wrong weights (a GGUF file is cached by its content, not its name)."""

from __future__ import annotations

import json
import shutil
import socket
import time

import pytest

from clear_core.backends import embedded, gguf_file, load_backend
from clear_core.cli import main
from clear_core.errors import ClearError
from conftest import write_rows


def score_with(tmp_path, capfd, model: str) -> tuple[int, str]:
    """`clear-studio score FILE --model MODEL` in process: (exit code, stderr)."""
    data = write_rows(tmp_path / "rows.jsonl", n=4)
    capfd.readouterr()
    code = main(["score", str(data), "--model", model, "--workspace", str(tmp_path / "ws.duckdb"), "--quiet"])
    return code, capfd.readouterr().err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0]


def test_a_junk_file_under_the_default_models_name_is_refused(tmp_path, tiny_model_dir):
    """The cache once held the converted default model under its name alone: a junk file of that name loaded it."""
    root = tmp_path / "models"
    shutil.copytree(tiny_model_dir, root / embedded.NAME)    # stands in for the cached default weights
    junk = tmp_path / f"{embedded.NAME}.gguf"
    junk.write_bytes(b"this is not a GGUF model file")
    with pytest.raises(ClearError, match="is not a GGUF file") as err:
        load_backend(str(junk), device="cpu", cache_dir=root)
    assert str(junk) in str(err.value)


def test_gguf_cache_dirs_are_keyed_by_content(tmp_path):
    a, b = tmp_path / "a" / "model.gguf", tmp_path / "b" / "model.gguf"
    for path, body in ((a, b"one"), (b, b"two")):
        path.parent.mkdir()
        path.write_bytes(gguf_file.MAGIC + body)
    root = tmp_path / "models"
    dir_a, dir_b = gguf_file.cache_dir(a, root), gguf_file.cache_dir(b, root)
    assert dir_a != dir_b and dir_a.parent == root and dir_a.name.startswith("model-")
    (tmp_path / "c.gguf").write_bytes(a.read_bytes())
    assert gguf_file.cache_dir(tmp_path / "c.gguf", root, name="model") == dir_a   # same bytes, same copy
    a.write_bytes(gguf_file.MAGIC + b"changed")
    assert gguf_file.cache_dir(a, root) != dir_a                                  # rewritten in place: new copy


def test_cli_junk_gguf_exits_2_with_one_line(tmp_path, capfd):
    junk = tmp_path / f"{embedded.NAME}.gguf"
    junk.write_bytes(b"x" * 30)
    assert_one_line_error(*score_with(tmp_path, capfd, str(junk)), str(junk), "not a GGUF file")


def test_cli_broken_gguf_exits_2_with_one_line(tmp_path, capfd):
    """The magic bytes, then garbage: the GGUF reader's own exception becomes the one-line error."""
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(gguf_file.MAGIC + b"\x03\x00\x00\x00" + b"garbage" * 3)
    assert_one_line_error(*score_with(tmp_path, capfd, str(broken)), str(broken), "could not be loaded")


def test_cli_model_needing_remote_code_exits_2_and_runs_nothing(tmp_path, capfd, tiny_model_dir):
    model = tmp_path / "remote"
    shutil.copytree(tiny_model_dir, model)
    config_path = model / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.update(tokenizer_class="CustomTokenizer", auto_map={"AutoTokenizer": ["custom.CustomTokenizer", None]})
    config_path.write_text(json.dumps(config))
    marker = tmp_path / "code-ran"
    (model / "custom.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    assert_one_line_error(*score_with(tmp_path, capfd, str(model)), str(model), "trust_remote_code")
    assert not marker.exists()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]   # nothing listens there once the socket is closed


def test_cli_unknown_hub_id_offline_fails_fast(tmp_path, capfd, monkeypatch):
    """Not in the HF cache and no hub to ask: one line at once (it waited ~60 s in the hub client's retries)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")   # an unreachable hub
    t0 = time.perf_counter()
    code, err = score_with(tmp_path, capfd, "clear-studio-tests/no-such-model")
    assert time.perf_counter() - t0 < 10
    assert_one_line_error(code, err, "'clear-studio-tests/no-such-model'", "cannot be reached")


def test_cli_unknown_hub_id_with_the_hub_switched_off(tmp_path, capfd, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    t0 = time.perf_counter()
    code, err = score_with(tmp_path, capfd, "clear-studio-tests/no-such-model")
    assert time.perf_counter() - t0 < 10
    assert_one_line_error(code, err, "HF_HUB_OFFLINE")
