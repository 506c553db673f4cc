"""Export a dataset from the workspace: the curated rows, or every row with its scores and decision, plus a manifest.

Curated: rows decided `drop` are left out; `accept` and `edit` responses are written into the row itself with
formats.apply_response (every other field of the row untouched); with a finished score run, undecided rows whose
confidence is below the run's t_drop are left out too (confidence in [0, 1], higher = more trustworthy). The
thresholds are the run's, as the app and the CLI read them (`filtering.run_thresholds`): stored with the run when
an analyst set them, else the median. Untouched rows come out exactly as they came in in the source's own format.

All rows: every row as it came in, plus clear_row_id, clear_confidence, clear_band, clear_decision, clear_response
(the response after the decision) and one clear_<signal> column per signal of the run.

The manifest (PATH + ".manifest.json") records counts, what happened to the undecided rows (undecided_rows), the
thresholds and where they came from, run, model, preset, weights, the input's sha256, the app version and the
time; both files are written atomically.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa

from . import __version__, filtering
from .atomic import atomic_open
from .config import Thresholds
from .errors import ClearError, UnknownNameError
from .names import ACTIONS, EXPORT_FORMATS, EXPORT_VARIANTS as VARIANTS


def manifest_path(path: str | os.PathLike) -> str:
    return str(path) + ".manifest.json"


def export_dataset(ws, dataset, path: str | os.PathLike, fmt: str = "same", variant: str = "curated",
                   run_id: int | None = None, t_drop: float | None = None, t_keep: float | None = None,
                   decisions_only: bool = False) -> dict:
    """Write `dataset` (name, id or DatasetInfo) to `path` and its manifest beside it; returns the manifest.

    run_id: the score run whose confidence filters and annotates (variant "all") the rows; by default the
    dataset's latest finished score run. The thresholds are the ones the app, the CLI and correction use
    (`filtering.run_thresholds`: stored with the run, else the median): a curated export leaves out the undecided
    rows below t_drop. `t_drop` (CLI --drop-below) replaces the run's t_drop, and t_keep then defaults to it;
    decisions_only=True applies the reviewers' decisions and no threshold (CLI --decisions-only).
    """
    from .formats import apply_response, write_dataset

    if fmt not in EXPORT_FORMATS:
        raise UnknownNameError("export format", fmt, EXPORT_FORMATS)
    info, run, cut = _source(ws, dataset, variant, run_id, t_drop, t_keep, decisions_only)
    frame = ws.export_frame(info.id, None if run is None else run.id)
    spec = info.spec
    target = spec if fmt in ("same", spec.file_type) else fmt

    decision = _objects(frame["decision"])
    conf = frame["confidence"].to_numpy(dtype=float, na_value=np.nan)
    new_text = _objects(frame["decision_text"])
    changed = np.isin(decision, ["accept", "edit"])
    written, counts = _select(decision, conf, variant, cut)

    originals = _objects(frame["original"])
    if variant == "curated":
        for i in np.flatnonzero(changed & written):
            originals[i] = apply_response(originals[i], spec, new_text[i])
        rows = originals[written].tolist()
        extra = None
    else:
        rows = originals.tolist()
        extra = _annotations(ws, frame, run, cut[0] if cut else None, decision, conf, changed, new_text)
    write_dataset(str(path), target, rows, extra)
    manifest = _manifest(info, run, fmt if fmt != "same" else spec.file_type, variant, path, counts, cut, t_drop)
    _write_json_atomic(manifest_path(path), manifest)
    return manifest


def export_counts(ws, dataset, variant: str = "curated", run_id: int | None = None,
                  t_drop: float | None = None, decisions_only: bool = False) -> dict:
    """The manifest counts `export_dataset` with these arguments would record (input, written, dropped,
    dropped_by_decision, dropped_below_threshold, edited, accepted, decisions per action, undecided_rows), without
    writing."""
    info, run, cut = _source(ws, dataset, variant, run_id, t_drop, None, decisions_only)
    frame = ws.export_frame(info.id, None if run is None else run.id, text=False)
    return _select(_objects(frame["decision"]), frame["confidence"].to_numpy(dtype=float, na_value=np.nan),
                   variant, cut)[1]


def _source(ws, dataset, variant: str, run_id, t_drop, t_keep, decisions_only: bool):
    """(DatasetInfo, the score run the export reads or None, (Thresholds, where they come from) or None)."""
    if variant not in VARIANTS:
        raise UnknownNameError("export variant", variant, VARIANTS)
    info = ws.get_dataset(dataset.id if hasattr(dataset, "id") else dataset)
    if decisions_only and t_drop is not None:
        raise ClearError("a drop threshold (--drop-below) and --decisions-only do not go together")
    if decisions_only and variant == "curated" and run_id is None:  # the decisions alone: no run is read
        return info, None, None
    if t_drop is not None:  # the drop band needs a finished run's confidence: a clear error when there is none
        run = ws.score_run(info, run_id)
    elif run_id is not None:  # a named run annotates the rows, finished or not
        run = ws.score_run(info, run_id, finished=False)
    else:
        run = ws.latest_run(info.id, kind="score", status="done")
    if run is None or run.status != "done" or (decisions_only and variant == "curated"):
        return info, run, None
    try:
        if t_drop is not None:
            cut = Thresholds(t_drop=float(t_drop), t_keep=float(t_drop if t_keep is None else t_keep))
            return info, run, (cut, "given")
        th = filtering.run_thresholds(ws, run.id)
    except ValueError as exc:  # a run without confidence values, or thresholds out of order
        if t_drop is not None:
            raise ClearError(str(exc)) from None
        return info, run, None
    source = "stored" if filtering.stored_thresholds(run) is not None else "default"
    if t_keep is not None and float(t_keep) != th.t_keep:
        th, source = Thresholds(t_drop=min(th.t_drop, float(t_keep)), t_keep=float(t_keep)), "given"
    return info, run, (th, source)


UNDECIDED_RULES = {
    None: "no finished scoring run (or --decisions-only): every undecided row is kept",
    "all": "all rows variant: every row is written, its band in clear_band",
    "cut": "undecided rows whose confidence is below t_drop are left out; undecided rows at or above it, or without "
           "a confidence, are kept; a reviewer's decision beats the threshold",
}


def _select(decision: np.ndarray, conf: np.ndarray, variant: str, cut) -> tuple[np.ndarray, dict]:
    """(which rows are written, the manifest counts). Curated: a reviewer's drop leaves a row out, and so does the
    drop band under t_drop for an undecided row (a decision beats the threshold; NaN is never below it)."""
    undecided = decision == None  # noqa: E711 (elementwise)
    counts = {"input": len(decision), "dropped_by_decision": 0, "dropped_below_threshold": 0,
              "edited": int(np.sum(decision == "edit")), "accepted": int(np.sum(decision == "accept")),
              "decisions": {a: int(np.sum(decision == a)) for a in ACTIONS}}
    written = np.ones(len(decision), dtype=bool)
    below = np.zeros(len(decision), dtype=bool)
    if variant == "curated":
        by_decision = decision == "drop"
        if cut is not None:
            t_drop = cut[0].t_drop
            below = undecided & (filtering.band_codes(conf, t_drop, t_drop) == filtering.DROP)
        written = ~(by_decision | below)
        counts["dropped_by_decision"], counts["dropped_below_threshold"] = int(by_decision.sum()), int(below.sum())
    counts["written"] = int(written.sum())
    counts["dropped"] = counts["input"] - counts["written"]
    rule = "all" if variant == "all" else ("cut" if cut is not None else None)
    counts["undecided_rows"] = {"kept": int((undecided & written).sum()), "dropped_below_t_drop": int(below.sum()),
                                "rule": UNDECIDED_RULES[rule]}
    return written, counts


def _objects(column) -> np.ndarray:
    """A column as an object array of Python values, missing values as None."""
    out = np.empty(len(column), dtype=object)
    out[:] = pa.array(column).to_pylist()  # through Arrow: nulls become None, not pd.NA
    return out


def _thresholds_entry(cut, t_drop) -> dict | None:
    """The manifest's thresholds: the cut, where it came from (given, stored with the run, default) and
    drop_below (the t_drop asked for, if any)."""
    if cut is None:
        return None
    th, source = cut
    return {"t_drop": th.t_drop, "t_keep": th.t_keep, "drop_below": t_drop, "source": source}


def _annotations(ws, frame, run, thresholds, decision, conf, changed, new_text) -> dict[str, list]:
    responses = _objects(frame["response"])
    responses[changed] = new_text[changed]
    band = np.full(len(frame), None, dtype=object)
    if thresholds is not None:
        band = filtering.bands(conf, thresholds)
        band[~frame["scored"].to_numpy(dtype=bool)] = None  # no confidence entry: in no band, as in the store
    extra = {"clear_row_id": _objects(frame["row_id"]).tolist(),
             "clear_confidence": [None if np.isnan(c) else float(c) for c in conf],
             "clear_band": band.tolist(), "clear_decision": list(decision), "clear_response": responses.tolist()}
    if run is not None:
        wide = ws.scores_wide(run.id)
        aligned = frame[["row_idx"]].merge(wide, on="row_idx", how="left")
        for signal in wide.columns:
            if signal in ("row_idx", "confidence"):
                continue
            values = aligned[signal].to_numpy(dtype=float, na_value=np.nan)
            extra[f"clear_{signal}"] = [None if np.isnan(v) else float(v) for v in values]
    return extra


def _manifest(info, run, file_type, variant, path, counts, cut, t_drop) -> dict:
    config = (run.config or {}) if run is not None else {}
    return {
        "dataset": info.name, "source_path": info.source_path, "input_sha256": info.sha256,
        "output": str(path), "file_type": file_type, "format": info.spec_dict.get("format"), "variant": variant,
        "counts": counts,  # with undecided_rows: how many were kept, dropped below t_drop, and the rule
        "thresholds": _thresholds_entry(cut, t_drop),
        "run_id": None if run is None else run.id,
        "model": config.get("model"), "preset": config.get("preset"),
        "weights": None if run is None else (run.weights or config.get("weights")),
        "app_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _write_json_atomic(path: str, data: dict) -> None:
    with atomic_open(path) as fh:
        json.dump(data, fh, indent=2, ensure_ascii=False, default=str)
