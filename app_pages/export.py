"""Export: the curated dataset (or every row with its scores and decisions) in any format, with its manifest."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import streamlit as st

from clear_core.errors import ClearError
from clear_core.export import export_counts
from clear_core.names import EXPORT_FORMATS, EXPORT_VARIANTS
from ui import paths, state
from ui.widgets import literal

FORMAT_LABELS = {"same": "Same as the input", "jsonl": "JSONL", "json": "JSON", "csv": "CSV", "parquet": "Parquet"}
VARIANT_LABELS = {"curated": "Curated rows only", "all": "All rows + score and decision columns"}
s = st.session_state


def file_name(ds, fmt: str, variant: str) -> str:
    """From the name's slug, never from the name itself: a name may hold '/', '..' or an absolute path."""
    suffix = ds.spec.file_type if fmt == "same" else fmt  # every file type is its own suffix
    return f"{paths.slug(ds.name, ds.id)}.{variant}.{suffix}"


def write(ds, run, path: str, fmt: str, variant: str) -> dict:
    """The export the CLI's `clear-studio export` writes: the run's stored thresholds (set on Explore), no others."""
    from clear_core import export

    return export.export_dataset(state.ws(), ds.name, path, fmt=fmt, variant=variant, run_id=run.id if run else None)


st.title("Export")
ds, run = state.dataset(), state.run()
if ds is None:
    state.stop_with_hint("No dataset yet: load one on **Data & Scoring**.")
thr = state.thresholds(run.id) if run is not None and run.status == "done" else None
ws = state.ws()

c1, c2 = st.columns(2)
fmt = c1.radio("Format", EXPORT_FORMATS, format_func=lambda f: FORMAT_LABELS.get(f, f), horizontal=True, key="x_fmt")
variant = c2.radio("Rows", EXPORT_VARIANTS, format_func=VARIANT_LABELS.get, horizontal=True, key="x_variant")

c = export_counts(ws, ds.id, variant, run_id=run.id if run else None)
for col, (label, value) in zip(st.columns(4), [("Rows in the file", c["written"]),
                                              (":red[Dropped by a reviewer]", c["dropped_by_decision"]),
                                              (":red[Dropped below the threshold]", c["dropped_below_threshold"]),
                                              (":violet[Fixed or edited]", c["edited"] + c["accepted"])]):
    col.metric(label, f"{value:,}", border=True)
undecided = c["undecided_rows"]
if thr is not None:
    st.caption(f"Curated: a reviewer's drop removes a row whatever its score; undecided rows with confidence below "
               f"{thr.t_drop:.3f} (the drop threshold on *Explore*, "
               + (f"kept with run #{run.id}" if run.thresholds else "the default: none set yet")
               + ", which the CLI's `clear-studio export` follows too) are left out: "
               f"{undecided['dropped_below_t_drop']:,} of them, {undecided['kept']:,} undecided rows kept. Accepted "
               "fixes and edits replace the response; every other row comes out exactly as it came in. All rows: "
               "every row, plus its confidence, band, decision and final response as columns.")
else:
    st.caption("No finished scoring run: the export follows the reviewers' decisions only.")

st.subheader("Download")
if st.button("Prepare the file", type="primary", icon=":material/build:", key="x_prepare"):
    with st.spinner("Writing…"), tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / file_name(ds, fmt, variant)
        manifest = write(ds, run, str(out), fmt, variant)
        s["x_file"] = ((ds.id, fmt, variant), out.name, out.read_bytes(), manifest)
if s.get("x_file") and s["x_file"][0] == (ds.id, fmt, variant):
    _, name, data, manifest = s["x_file"]
    st.download_button(f"Download {literal(name)} ({len(data) / 1024:,.1f} KiB)", data, file_name=name,
                       icon=":material/download:", key="x_download", on_click="ignore")
    with st.expander("Manifest", expanded=True):
        st.code(json.dumps(manifest, indent=2, default=str), language="json")

st.subheader("Write to the export folder")
folder = Path(s["workspace_path"]).expanduser().resolve().parent / "exports"
st.caption(f"Files go into {literal(folder)}; a name such as `v2/data.jsonl` makes the sub-folder.")
c1, c2 = st.columns([4, 1], vertical_alignment="bottom")
# A file name inside the folder, never a free path: the app may serve a team, and a browser must not choose where
# the server writes.
name = c1.text_input("File name", value=file_name(ds, fmt, variant), key=f"x_path_{fmt}_{variant}")
if c2.button("Write", icon=":material/save:", key="x_write"):
    try:
        target = paths.inside(folder, name.strip())
        target.parent.mkdir(parents=True, exist_ok=True)
        manifest = write(ds, run, str(target), fmt, variant)
    except ClearError as exc:
        st.error(literal(exc), icon=":material/error:")
    else:
        st.success(f"Wrote {literal(target)} and its manifest.", icon=":material/check_circle:")
        st.code(json.dumps(manifest, indent=2, default=str), language="json")
