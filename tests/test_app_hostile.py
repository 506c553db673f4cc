"""Hostile names and text in the app: every user or dataset string shows as typed (no HTML, Markdown, link, icon or
math of its own), no file path is built from a name, and a failing action is a message, not a traceback.
The real-browser check of the same strings is in test_browser.py."""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from app_helpers import (FILE_NAME, HOSTILE, PAYLOADS, add_hostile_dataset, close_app_workspace,  # noqa: E402
                         markdown_strings, shown_row)
from bench.ui_latency import make_dataset, write_fake_run  # noqa: E402
from clear_core.errors import ClearError  # noqa: E402
from clear_core.store import Workspace  # noqa: E402
from ui import paths  # noqa: E402
from ui.widgets import html_text, literal  # noqa: E402

PAGES = ["app_pages/data.py", "app_pages/explore.py", "app_pages/review.py", "app_pages/export.py"]


def shown(text: str) -> str:
    """What the reader sees of an escaped string: references decoded, the invisible word joiners dropped."""
    return html.unescape(text).replace("\u2060", "")


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def assert_literal(at: AppTest, must_show: list[str]) -> None:
    """No payload reaches the Markdown renderer as such, and each of `must_show` is there, escaped."""
    assert not at.exception, [e.value for e in at.exception]
    strings = markdown_strings(at)
    for text in strings:
        assert not [p for p in PAYLOADS if p in text], text
    seen = " ".join(shown(text) for text in strings)
    for text in must_show:
        assert text in seen, (text, strings)


# ----------------------------------------------------------------------------------------------------- helpers
@pytest.mark.parametrize("text", [*PAYLOADS, HOSTILE, FILE_NAME, "# heading", "- item", "+ item", "1. first",
                                  "12) twelfth", "a -> b <= c", ":streamlit: :smile:", "ana@example.com",
                                  "see http://127.0.0.1:9/ and www.example.com", "`code` \\*x\\* ~~s~~ | t |",
                                  "&amp; &#58; &lt;", "quotes \" and '"])
def test_literal_reads_back_as_the_text_with_no_markup_left(text):
    out = literal(text)
    assert shown(out) == text
    assert not set(out) & set("<>[]*_`$:~|\\\"'")  # nothing left that starts Markdown, a directive or HTML
    assert not re.match(r"\d*[#+.)-]", out)  # nor a heading or list marker where it starts
    assert not re.search(r"https?:/|www\.|@\w", out)  # nor what Streamlit would make a link


def test_literal_puts_everything_on_one_line():
    assert literal("  a\r\nb\rc\n\nd  ") == "a b c  d"
    assert literal(None) == "" and literal(ClearError("x: y")) == "x&#58; y"


def test_html_text_stays_one_html_block_and_keeps_material_codes():
    out = html_text("x\r\r:material/warning:\n\n<b>y</b>")
    assert not re.search(r"[\r\n]|:material/|<b>", out)  # a blank line would end the raw HTML block
    assert shown(out.replace("<br>", "\n")) == "x\n\n:material/warning:\n\n<b>y</b>"


@pytest.mark.parametrize("name, expected", [("../../../../elsewhere/x", "elsewhere-x-7"), ("/tmp/abs/x", "tmp-abs-x-7"),
                                            ("sub/dir", "sub-dir-7"), ("Ünïcode Data", "unicode-data-7"),
                                            ("", "dataset-7"), ("..", "dataset-7"), ("A_b-C", "a_b-c-7")])
def test_slug_is_a_plain_file_name_with_the_dataset_id(name, expected):
    assert paths.slug(name, 7) == expected


@pytest.mark.parametrize("name", [HOSTILE, FILE_NAME, "x" * 500, "/" * 30, "名前"])
def test_slug_of_any_name_is_short_and_safe(name):
    assert re.fullmatch(r"[a-z0-9_-]{1,%d}-3" % paths.SLUG_MAX, paths.slug(name, 3))


def test_inside_refuses_every_path_out_of_the_folder(tmp_path):
    folder = tmp_path / "exports"
    (folder / "a_folder").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    (folder / "link").symlink_to(tmp_path / "out")
    assert paths.inside(folder, "a.jsonl") == folder.resolve() / "a.jsonl"
    assert paths.inside(folder, "v2/a.jsonl") == folder.resolve() / "v2" / "a.jsonl"
    for bad in ["../a.jsonl", "v2/../../a.jsonl", str(tmp_path / "a.jsonl"), "/etc/passwd", "", ".", "link/a.jsonl",
                "a_folder"]:
        with pytest.raises(ClearError):
            paths.inside(folder, bad)


# ----------------------------------------------------------------------------------------------------- AppTest
@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """A scored dataset named HOSTILE, with a HOSTILE row whose decision is signed by a HOSTILE reviewer."""
    path = str(tmp_path / "ws.duckdb")
    with Workspace.open(path) as ws:
        ds_id, row = add_hostile_dataset(ws)
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    yield {"path": path, "dataset_id": ds_id, "row": row}
    close_app_workspace(path)


def test_hostile_names_and_text_show_literally_on_every_page(hostile):
    from ui import state

    at = app().run()
    at.sidebar.text_input(key="reviewer").set_value(HOSTILE).run()
    must_show = {"app_pages/data.py": [HOSTILE, f"{HOSTILE}.jsonl"], "app_pages/review.py": [],
                 "app_pages/explore.py": [], "app_pages/export.py": []}
    for page in PAGES:
        at.switch_page(page).run()
        assert_literal(at, must_show[page])
        assert not at.error, [e.value for e in at.error]

    # the row, its text and the name of the reviewer who decided it
    at.switch_page("app_pages/review.py").run()
    at.selectbox(key="f_band").set_value("all").run()
    at.toggle(key="f_undecided").set_value(False).run()
    at.text_input(key="f_search").set_value("127.0.0.1").run()
    assert shown_row(at) == hostile["row"]
    assert_literal(at, [f"Q {HOSTILE}", f"A {HOSTILE}", f"by {HOSTILE}"])
    at.button(key="act_drop").click().run()  # a decision signed with the hostile name from the sidebar
    at.button(key="restart").click().run()
    assert shown_row(at) == hostile["row"]
    assert_literal(at, [f"by {HOSTILE}"])
    assert not at.error
    decided = state.workspace(hostile["path"]).current_decisions(hostile["dataset_id"])
    assert decided[["action", "reviewer"]].values.tolist() == [["drop", HOSTILE]]


def test_hostile_file_and_column_names_show_literally_on_upload(hostile):
    row = {"question": "Say hi", "answer": "hi", **{p: "v" for p in PAYLOADS}}
    data = (json.dumps(row) + "\n" + json.dumps({"question": "no answer"}) + "\n").encode()
    at = app().run()
    at.file_uploader(key="upload").set_value((FILE_NAME, data, "application/json")).run()
    assert_literal(at, [*PAYLOADS, f"in {FILE_NAME}: fix them"])  # the columns, and the bad row's file
    assert any("bad row" in e.value for e in at.error)
    at.checkbox(key="skip_bad").check().run()
    at.button(key="import").click().run()
    assert_literal(at, [f"“{Path(FILE_NAME).stem}”"])  # the new dataset, named after the file
    assert at.sidebar.selectbox(key="dataset").value == Path(FILE_NAME).stem


def test_a_failing_decision_is_a_message_not_a_traceback(hostile, monkeypatch):
    from ui import state

    at = app().run()
    at.switch_page("app_pages/review.py").run()
    ws = state.workspace(hostile["path"])

    def broken(*args, **kwargs):
        raise RuntimeError(f"disk full {HOSTILE}")

    monkeypatch.setattr(ws, "record_decisions", broken)
    at.button(key="act_keep").click().run()
    assert_literal(at, [f"failed unexpectedly (RuntimeError: disk full {HOSTILE})"])
    assert any(x.label == "Details" for x in at.expander)

    def refused(*args, **kwargs):
        raise ClearError(f"row changed meanwhile; {HOSTILE}")

    monkeypatch.setattr(ws, "record_decisions", refused)
    at.button(key="act_drop").click().run()
    assert_literal(at, [f"row changed meanwhile; {HOSTILE}"])
    assert len(at.error) == 1 and not [x for x in at.expander if x.label == "Details"]
    at.run()
    assert not at.error  # the message belongs to that click only
    assert ws.current_decisions(hostile["dataset_id"])["reviewer"].tolist() == [HOSTILE]  # nothing was written


@pytest.mark.parametrize("name", ["../../../../elsewhere/x", "ABSOLUTE", "sub/dir"])
def test_export_writes_inside_the_export_folder_whatever_the_name(tmp_path, monkeypatch, name):
    name = str(tmp_path / "abs" / "x") if name == "ABSOLUTE" else name
    ws_dir = tmp_path / "a" / "b" / "c" / "d"  # deep enough that four '..' stay inside tmp_path
    ws_dir.mkdir(parents=True)
    path = str(ws_dir / "ws.duckdb")
    with Workspace.open(path) as ws:
        make_dataset(ws, name, 12)
        write_fake_run(ws, name)
    monkeypatch.setenv("CLEAR_STUDIO_WORKSPACE", path)
    exports = ws_dir / "exports"
    try:
        at = app().run()
        at.switch_page("app_pages/export.py").run()
        at.button(key="x_prepare").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        field = next(t for t in at.text_input if t.key and t.key.startswith("x_path_"))
        assert re.fullmatch(r"[a-z0-9_-]+-\d+\.curated\.jsonl", field.value)
        assert field.value in shown(at.get("download_button")[0].proto.label)
        at.button(key="x_write").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert sorted(p.name for p in exports.iterdir()) == [field.value, field.value + ".manifest.json"]

        for outside in ["../outside.jsonl", str(tmp_path / "outside.jsonl")]:
            field = next(t for t in at.text_input if t.key and t.key.startswith("x_path_"))
            field.set_value(outside).run()
            at.button(key="x_write").click().run()
            assert not at.exception
            assert [e.value for e in at.error if "not a file name inside" in e.value], [e.value for e in at.error]
    finally:
        close_app_workspace(path)
    written = {p for p in tmp_path.rglob("*") if p.is_file() and exports not in p.parents}
    assert {p.name for p in written} <= {"ws.duckdb", "ws.duckdb.wal"}, written
