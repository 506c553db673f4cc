"""The package installs: a wheel built from the source distribution, installed into a fresh venv, serves the app
with `clear-studio app --with-sample` from another folder, and runs the installed copy of the app and clear_core."""

from __future__ import annotations

import os
import signal
import site
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (ROOT / "sample_data" / "demo.jsonl").exists(),
                                 reason="sample_data/demo.jsonl has not been generated")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(*cmd, **kw) -> str:
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert done.returncode == 0, f"{cmd}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv holding the wheel's copy of clear-studio; the dependencies come from the test env's site-packages.

    A venv made with --system-site-packages would see the base interpreter's packages, not this env's, so a .pth
    file adds this env's site-packages instead. It adds them as plain paths: the editable install's finder there
    is not activated, and the venv's own site-packages (the wheel's copy) come first."""
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    # sdist, then the wheel from it, as `python -m build` does: the wheel must not depend on files in the checkout
    sdist = run(sys.executable, "-c", f"from setuptools import build_meta; print(build_meta.build_sdist({str(dist)!r}))",
                cwd=ROOT).strip().splitlines()[-1]
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, dist / sdist)
    wheel = next(dist.glob("clear_studio-*.whl"))
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    purelib = run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    Path(purelib, "_test_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # --ignore-installed: the test env's editable clear-studio is on the path, and must be neither kept nor removed
    run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed", wheel)
    return venv


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CLEAR_STUDIO_WORKSPACE")}
    return {**env, **extra}


def test_the_installed_copy_is_imported(installed, tmp_path):
    code = ("import clear_core, clear_studio_app; from clear_core.commands.serve import app_dir; "
            "print(clear_core.__file__); print(clear_studio_app.__file__); print(app_dir())")
    paths = run(installed / "bin" / "python", "-c", code, cwd=tmp_path, env=clean_env()).split()
    assert len(paths) == 3 and all(Path(p).is_relative_to(installed) for p in paths), paths
    app = Path(paths[2])
    assert (app / "app.py").is_file() and (app / ".streamlit" / "config.toml").is_file()
    assert (app / "ui" / "logo.svg").is_file() and sorted(p.name for p in (app / "app_pages").glob("*.py"))


def test_clear_studio_app_serves_from_the_wheel(installed, tmp_path):
    port = free_port()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([str(installed / "bin" / "clear-studio"), "app", "--workspace", "ws.duckdb",
                             "--with-sample", "--port", str(port)], cwd=elsewhere, env=clean_env(),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        health, deadline = None, time.time() + 120
        while health != b"ok" and proc.poll() is None and time.time() < deadline:
            try:
                health = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
            except OSError:
                time.sleep(0.5)
        assert health == b"ok", (tmp_path / "serve.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)   # the command stops its server too
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    out = (tmp_path / "serve.log").read_text()
    assert f"loaded the sample data into {elsewhere / 'ws.duckdb'} as dataset 'demo'" in out


def test_the_installed_app_script_runs(installed, tmp_path):
    """The served files work together: the installed app.py renders its first page with the installed ui/."""
    script = ("import sys; from streamlit.testing.v1 import AppTest; from clear_core.commands.serve import app_dir; "
              "at = AppTest.from_file(str(app_dir() / 'app.py'), default_timeout=90).run(); "
              "print('exceptions', len(at.exception)); print('titles', *[t.value for t in at.title])")
    out = run(installed / "bin" / "python", "-c", script, cwd=tmp_path,
              env=clean_env(CLEAR_STUDIO_WORKSPACE=str(tmp_path / "ws.duckdb")))
    assert "exceptions 0" in out and "Data & Scoring" in out, out
