"""Data & Scoring: load a file (or a sample), check its format and bad rows, import it, score it, Auto-Correct."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from clear_core import formats, runs
from clear_core.atomic import atomic_path
from clear_core.config import PRESETS, preset_config
from clear_core.errors import ClearError, InputError, InputErrors
from clear_core.names import FILE_TYPES, INGEST_FORMATS
from ui import guide, jobs, paths, state, widgets
from ui.widgets import literal

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "demo.jsonl"
MODELS = {"default": "Embedded SmolLM2-135M-Instruct (default, offline)", "custom": "A local model dir, .gguf or HF id",
          "tiny": "Tiny random model (tests and demos only)"}
PRESET_HELP = {"fast": "likelihood (mean, weakest token, end of turn, against similar rows) + reflection + neighbours "
                       "+ form + five text checks (appended instruction, placeholder, unseen input, artifacts, "
                       "arithmetic), no sampling",
               "balanced": "+ in-context likelihood: a second pass with similar rows as examples, no sampling",
               "thorough": "+ consistency over 5 samples and IFD, BSDetector weights (slow)"}
s = st.session_state


def samples() -> list[Path]:
    return [p for p in [SAMPLE, *sorted((ROOT / "sample_data" / "examples").glob("*"))] if p.is_file()]


@st.cache_resource(max_entries=4, show_spinner="Reading the file…")
def read(path: str, mtime: float, fmt: str, mapping: tuple | None, skip: bool):
    return formats.read_dataset(path, format=fmt, mapping=dict(mapping) if mapping else None, skip_bad_rows=skip)


def import_sample() -> None:
    result = formats.read_dataset(str(SAMPLE))
    state.ws().add_dataset("demo", result)
    state.select(dataset="demo")


def source_file() -> str | None:
    """The file to load: an upload (saved next to the workspace) or a sample file."""
    kind = st.radio("Source", ["Upload a file", "Sample file"], horizontal=True, key="source_kind",
                    label_visibility="collapsed")
    if kind == "Sample file":
        options = samples()
        if not options:
            st.info("No sample files found under sample_data/.")
            return None
        pick = st.selectbox("Sample file", options, format_func=lambda p: str(p.relative_to(ROOT)), key="sample_pick")
        return str(pick)
    up = st.file_uploader("Dataset file", type=list(FILE_TYPES), key="upload",
                          help="JSONL / JSON / CSV / Parquet in Alpaca, ShareGPT, messages, prompt/completion or "
                               "any columns you map.")
    if up is None:
        return None
    folder = Path(s["workspace_path"]).expanduser().resolve().parent / "uploads"
    folder.mkdir(exist_ok=True)
    try:
        target = paths.inside(folder, Path(up.name).name)  # a browser's file name may be "..", or empty
    except ClearError as exc:
        st.error(literal(exc))
        return None
    data = up.getvalue()
    if not target.exists() or target.read_bytes() != data:
        try:
            with atomic_path(target) as tmp:  # a reader (or a second session) never sees half an upload
                Path(tmp).write_bytes(data)
        except ClearError as exc:
            st.error(literal(exc))
            return None
    return str(target)


def mapping_inputs(spec) -> tuple | None:
    """Column mapping for the 'columns' format: which column (or "{col}" template) is the prompt, the response..."""
    current = dict(spec.mapping or {}) if spec is not None else {}
    names = spec.columns if spec is not None and spec.columns else ["?"]
    cols = " ".join(f"<code>{literal(c)}</code>" for c in names)  # a code span would show references as typed
    st.caption(f"Columns in the file: {cols}. The prompt may be a template such as `{{question}}\\n{{context}}`.",
               unsafe_allow_html=True)
    out = {}
    for col, field in zip(st.columns(4), ("prompt", "response", "system", "id")):
        value = col.text_input(field.capitalize() + (" *" if field in ("prompt", "response") else ""),
                               value=current.get(field) or "", key=f"map_{field}")
        if value.strip():
            out[field] = value.strip()
    return tuple(sorted(out.items())) if {"prompt", "response"} <= set(out) else None


def load_section() -> None:
    path = source_file()
    if path is None:
        return
    c1, c2 = st.columns([1, 3])
    fmt = c1.selectbox("Format", INGEST_FORMATS, key="format_pick")
    skip = c2.checkbox("Skip bad rows (import the good ones, list the bad ones)", key="skip_bad")
    spec = None
    try:
        spec = formats.detect(path, format=fmt)
    except InputErrors as exc:  # not one row could be read: list them, as for bad rows found later
        bad_rows(path, exc)
        return
    except InputError as exc:
        if fmt != "columns":
            st.error(literal(exc))
            return
    mapping = None
    if fmt == "columns" or (spec is not None and spec.format == "columns"):
        mapping = mapping_inputs(spec)
        if mapping is None:
            st.info("Name the prompt and response columns to go on.")
            return
    try:
        result = read(path, Path(path).stat().st_mtime, fmt, mapping, skip)
    except InputErrors as exc:
        bad_rows(path, exc)
        return
    spec = result.spec
    mapped = "".join(f" · {k} <code>{literal(v)}</code>" for k, v in (spec.mapping or {}).items())
    st.markdown(f"**Detected:** `{spec.file_type}` · `{spec.format}` · {len(result.records):,} rows{mapped}",
                unsafe_allow_html=True)
    if result.errors:
        st.warning(f"{len(result.errors):,} bad row(s) will be skipped:")
        widgets.input_errors(result.errors)
    preview = pd.DataFrame([{"line": r.line, "prompt": formats.prompt_text(r.prompt), "response": r.response}
                            for r in result.records[:50]])
    st.dataframe(preview, hide_index=True, width="stretch", height=240)
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    name = c1.text_input("Dataset name", value=Path(path).stem, key=f"name_{Path(path).name}")
    if c2.button("Import", type="primary", icon=":material/download_done:", disabled=not result.records,
                 key="import"):
        s["_name_taken"] = None
        import_as(path, name.strip(), result)
    if (s.get("_name_taken") or {}).get("path") == path:
        name_conflict(path, result)


def bad_rows(path: str, exc: InputErrors) -> None:
    st.error(f"{len(exc.errors):,} bad row(s) in {literal(Path(path).name)}: fix them, or tick “Skip bad rows”.")
    widgets.input_errors(exc.errors)


def import_as(path: str, name: str, result, replace: bool = False) -> None:
    """Import `result` as `name`; a name already holding other content is kept for name_conflict() to offer a
    replace or another name, and any other refusal is shown here, so the rest of the page (a running job) stays."""
    ws = state.ws()
    try:
        with st.spinner("Importing…"):
            info = ws.add_dataset(name, result, replace=replace)
    except ClearError as exc:
        if not replace and name in {d.name for d in ws.list_datasets()}:
            s["_name_taken"] = {"path": path, "name": name}
        else:
            st.error(literal(exc), icon=":material/error:")
        return
    s["_name_taken"] = None
    st.toast(f"Imported {info.n_rows:,} rows as “{literal(info.name)}”", icon=":material/check_circle:")
    state.select(dataset=info.name)
    st.rerun()


def free_name(name: str) -> str:
    taken = {d.name for d in state.ws().list_datasets()}
    return next(f"{name}-{i}" for i in range(2, len(taken) + 3) if f"{name}-{i}" not in taken)


def name_conflict(path: str, result) -> None:
    """The name is taken by other content: replace that dataset, or import under a free name, from the page."""
    name = s["_name_taken"]["name"]
    old = state.ws().get_dataset(name)
    st.error(f"A dataset named “{literal(name)}” already exists with other content ({old.n_rows:,} rows, from "
             f"{literal(old.source_path)}). Replace it, or import this file under another name.",
             icon=":material/error:")
    job = jobs.current(s["workspace_path"])
    busy = job is not None and job.alive and job.dataset == name
    c1, c2, c3 = st.columns([1.6, 2, 1.4], vertical_alignment="bottom")
    if c1.button("Replace the existing dataset", icon=":material/swap_horiz:", key="replace_dataset", disabled=busy,
                 help="A run on it is going: stop it first." if busy else
                 "Its rows, runs and review decisions are deleted and this file takes its place."):
        import_as(path, name, result, replace=True)
    new = c2.text_input("Import under another name", value=free_name(name), key=f"rename_{Path(path).name}_{name}")
    if c3.button("Import under this name", type="primary", key="import_renamed", disabled=not new.strip()):
        import_as(path, new.strip(), result)


def score_section(ds) -> None:
    st.subheader(f"2 · Score “{literal(ds.name)}”")
    c1, c2 = st.columns([3, 2])
    choice = c1.selectbox("Model", list(MODELS), format_func=MODELS.get, key="model_pick")
    model = choice
    if choice == "custom":
        model = c1.text_input("Model dir, .gguf file or HF id", key="model_custom").strip()
    if not 0 <= s.get("score_limit", 0) <= ds.n_rows:  # a value kept from a bigger dataset
        s["score_limit"] = 0
    s.setdefault("score_limit", 0)
    limit = c1.number_input("Rows to score (0 = all)", 0, ds.n_rows, step=100, key="score_limit",
                            help="Score only the first N rows: a quick look before a full run.")
    preset = c2.radio("Preset", list(PRESETS), horizontal=True, key="preset_pick",
                      captions=[PRESET_HELP[p] for p in PRESETS])
    job = jobs.current(s["workspace_path"])
    busy = job is not None and job.alive
    if st.button("Start scoring", type="primary", icon=":material/play_arrow:", disabled=busy or not model,
                 key="start_scoring"):
        jobs.start_scoring(s["workspace_path"], ds.name, preset_config(preset, model=model, limit=limit or None))
        st.rerun()
    run = state.run()
    latest_correct = state.ws().latest_run(ds.id, kind="correct")
    for r in (run, latest_correct):
        if r is not None and r.status != "done" and not busy:
            st.warning(f"{r.kind.capitalize()} run #{r.id} is {r.status} at {r.n_done:,} / {r.n_total:,} rows"
                       + (f": {literal(r.message)}" if r.message else "") + ". Resume it here, or from a shell "
                       "once the app is closed (the app holds the workspace open):")
            c1, c2 = st.columns([1, 3], vertical_alignment="center")
            if c1.button(f"Resume run #{r.id}", icon=":material/replay:", key=f"resume_{r.id}"):
                jobs.resume(s["workspace_path"], ds.name, r)
                st.rerun()
            c2.code(runs.resume_command(r.id, s["workspace_path"]), language="bash")  # code: shown as typed
    live_progress(job)


def live_progress(job) -> None:
    """The running job's progress, refreshed every second while it runs; a full rerun once it ends."""
    @st.fragment(run_every=1 if job is not None and job.alive else None)
    def panel():
        current = jobs.current(s["workspace_path"])
        if current is None:
            return
        if current.alive:
            what = "Scoring" if current.kind == "score" else "Auto-Correct"
            st.markdown(f"**{what} “{literal(current.dataset)}”** · {current.phase}"
                        + (f" · run #{current.run_id}" if current.run_id else ""))
            widgets.run_progress(current.progress, current.phase)
            st.button("Stop", icon=":material/stop:", on_click=current.cancel.set, key="stop_job")
            if current.kind == "score" and current.run_id and s.get("_followed") != id(current):
                s["_followed"] = id(current)
                state.select(run_id=current.run_id)
                st.rerun(scope="app")
            return
        if s.get("_seen_job") != id(current):  # it just ended: refresh the sidebar and the run status
            s["_seen_job"] = id(current)
            st.rerun(scope="app")
        if current.phase == "done":
            st.success(f"{current.kind.capitalize()} run #{current.run_id} on “{literal(current.dataset)}” finished.",
                       icon=":material/check_circle:")
            if current.kind == "score":
                guide.after_scoring(current.run_id)
        elif current.phase == "stopped":
            st.info(literal(current.message), icon=":material/pause_circle:")
        else:
            st.error(f"The {current.kind} run failed: {literal(current.message)}")
            if current.details:
                with st.expander("Details"):
                    st.code(current.details, language=None)
    panel()


def correct_section(ds) -> None:
    run = state.run()
    if run is None or run.status != "done":
        return
    st.subheader("3 · Auto-Correct")
    thr = state.thresholds(run.id)
    counts = state.ws().band_counts(run.id, thr.t_drop, thr.t_keep, thr.eta)
    st.markdown(f"Proposes a fix for each of the **{counts['review'] + counts['drop']:,}** rows below the keep "
                f"threshold ({thr.t_keep:.3f}, set on *Explore*), from the most similar high-confidence rows, and "
                f"judges it against the original: the model in both orders, the dataset's classifier where the "
                f"answers are labels, and the scorer with the fix in the original's place. Before proposing, the run "
                f"corrupts some of its most trusted rows and checks which judge values restore them, so a fix "
                f"counts as confident where fixes like it were right at least η = {thr.eta:.2f} of the time. "
                f"Nothing is changed until a reviewer accepts it.")
    job = jobs.current(s["workspace_path"])
    if st.button("Propose corrections", icon=":material/auto_fix_high:", key="start_correct",
                 disabled=job is not None and job.alive):
        jobs.start_correction(s["workspace_path"], ds.name, run, thr)
        st.rerun()


st.title("Data & Scoring")
if guide.wanted():  # a first visit, even to a demo's preloaded sample: shown until dismissed or something is scored
    if guide.show(has_data=bool(state.ws().list_datasets())):
        with st.spinner("Loading the sample data…"):
            import_sample()
        st.rerun()
with st.expander("1 · Load a dataset", expanded=state.dataset() is None, icon=":material/upload_file:"):
    with state.guard("Loading the file"):  # its errors show here: the run below keeps its progress and Stop
        load_section()
ds = state.dataset()
if ds is not None:
    st.caption(f"“{literal(ds.name)}”: {ds.n_rows:,} rows · {ds.spec.file_type} / {ds.spec.format} · "
               f"from <code>{literal(ds.source_path)}</code>", unsafe_allow_html=True)
    score_section(ds)
    correct_section(ds)
