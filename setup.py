"""Build hook: the wheel carries the Streamlit app; the rest of the package is in pyproject.toml.

The app's files stay at the repository root, where `streamlit run app.py` uses them in place. A wheel holds packages
only, so building one copies them into the clear_studio_app package, where `clear-studio app` finds them after a
`pip install` (clear_core/commands/serve.py). An editable install serves them in place and copies nothing.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PACKAGE = "clear_studio_app"
# What the app needs at run time, relative to the repository root (--with-sample loads sample_data/demo.jsonl; the
# Data page lists the files of sample_data/examples/). MANIFEST.in names the same files for the source distribution.
APP_FILES = ("app.py", "app_pages/*.py", "ui/*.py", "ui/*.svg", ".streamlit/config.toml", "sample_data/demo.jsonl",
             "sample_data/examples/*")


def app_files(root: Path) -> list[Path]:
    """The app's files under `root`, relative to it."""
    return sorted({p.relative_to(root) for pattern in APP_FILES for p in root.glob(pattern) if p.is_file()})


class BuildPyWithApp(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        root = Path.cwd()   # setuptools builds in the project dir (or an unpacked source distribution)
        for rel in app_files(root):
            target = Path(self.build_lib, PACKAGE, rel)
            self.mkpath(str(target.parent))
            self.copy_file(str(root / rel), str(target))


setup(cmdclass={"build_py": BuildPyWithApp})
