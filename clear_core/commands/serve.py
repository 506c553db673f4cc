"""`clear-studio app`: serve the Streamlit app on a workspace, optionally loading the sample data first."""

from __future__ import annotations

import importlib.resources
import os
import signal
import subprocess
import sys
from pathlib import Path

from ..errors import ClearError

APP_PACKAGE = "clear_studio_app"
SAMPLE = Path("sample_data") / "demo.jsonl"   # relative to the app's folder


def app_dir() -> Path:
    """The folder holding app.py, found through the installed app package: inside it when installed from a wheel,
    next to it in a source tree (a checkout or an editable install), where the app stays at the repository root."""
    try:
        package = Path(str(importlib.resources.files(APP_PACKAGE)))
    except ModuleNotFoundError as exc:
        raise ClearError(f"the app package {APP_PACKAGE} is not installed: reinstall clear-studio") from exc
    for folder in (package, package.parent):
        if (folder / "app.py").is_file():
            return folder
    raise ClearError(f"the app script app.py is missing from {package}: reinstall clear-studio")


def register(sub, default_workspace: str) -> None:
    p = sub.add_parser("app", help="serve the web app (Streamlit) on a workspace")
    p.add_argument("--workspace", default=default_workspace, help="workspace file (default: %(default)s)")
    p.add_argument("--with-sample", action="store_true",
                   help="load sample_data/demo.jsonl as dataset 'demo' first, when the workspace lacks it")
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default: %(default)s)")
    p.set_defaults(func=run)


def load_sample(ws_path: str, sample: Path) -> bool:
    """Ingest the demo data as 'demo' unless present; the workspace is closed again before the app opens it.
    Returns True when it was loaded now."""
    from ..formats import read_dataset
    from ..store import Workspace

    if not sample.is_file():
        raise ClearError(f"sample data {sample} is missing; generate it with sample_data's script")
    with Workspace.open(ws_path) as ws:
        if any(d.name == "demo" for d in ws.list_datasets()):
            return False
        ws.add_dataset("demo", read_dataset(str(sample)))
    return True


def command(app: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(app / "app.py"), "--server.headless", "true",
            "--server.port", str(int(port))]


def run(args) -> int:
    app = app_dir()
    ws_path = str(Path(args.workspace).expanduser().resolve())
    if args.with_sample and load_sample(ws_path, app / SAMPLE):
        print(f"loaded the sample data into {ws_path} as dataset 'demo'")
    print(f"serving CLEAR Studio on http://localhost:{args.port} (workspace {ws_path}); Ctrl-C stops it")
    env = {**os.environ, "CLEAR_STUDIO_WORKSPACE": ws_path}
    # The app's folder as working directory: Streamlit reads the theme from ./.streamlit/config.toml.
    proc = subprocess.Popen(command(app, args.port), env=env, cwd=app)
    # A SIGTERM to this command stops the server too (Ctrl-C reaches both through the terminal).
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: proc.terminate())
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:  # the server got the same Ctrl-C: wait for its clean shutdown
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)
