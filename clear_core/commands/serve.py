"""`clear-studio app`: serve the Streamlit app on a workspace, optionally loading the sample data first."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ..errors import ClearError

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app.py"
SAMPLE = ROOT / "sample_data" / "demo.jsonl"


def register(sub, default_workspace: str) -> None:
    p = sub.add_parser("app", help="serve the web app (Streamlit) on a workspace")
    p.add_argument("--workspace", default=default_workspace, help="workspace file (default: %(default)s)")
    p.add_argument("--with-sample", action="store_true",
                   help="load sample_data/demo.jsonl as dataset 'demo' first, when the workspace lacks it")
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default: %(default)s)")
    p.set_defaults(func=run)


def load_sample(ws_path: str) -> bool:
    """Ingest the demo data as 'demo' unless present; the workspace is closed again before the app opens it.
    Returns True when it was loaded now."""
    from ..formats import read_dataset
    from ..store import Workspace

    if not SAMPLE.is_file():
        raise ClearError(f"sample data {SAMPLE} is missing; generate it with sample_data's script")
    with Workspace.open(ws_path) as ws:
        if any(d.name == "demo" for d in ws.list_datasets()):
            return False
        ws.add_dataset("demo", read_dataset(str(SAMPLE)))
    return True


def command(ws_path: str, port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
            "--server.port", str(int(port))]


def run(args) -> int:
    if not APP.is_file():
        raise ClearError(f"the app script {APP} is missing (install clear-studio from its source tree)")
    ws_path = str(Path(args.workspace).expanduser().resolve())
    if args.with_sample and load_sample(ws_path):
        print(f"loaded the sample data into {ws_path} as dataset 'demo'")
    print(f"serving CLEAR Studio on http://localhost:{args.port} (workspace {ws_path}); Ctrl-C stops it")
    env = {**os.environ, "CLEAR_STUDIO_WORKSPACE": ws_path}
    # The repo root as working directory: Streamlit reads the theme from ./.streamlit/config.toml.
    proc = subprocess.Popen(command(ws_path, args.port), env=env, cwd=ROOT)
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
