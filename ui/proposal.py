"""Review's Auto-Correct panels: why a proposal is (or is not) confident, and "accept all confident" with its count
and a confirm step. The store reads are `clear_core.store.proposal_detail`'s; texts from data are shown escaped."""

from __future__ import annotations

import math

import streamlit as st

from clear_core.correct.acceptance import AcceptanceRule
from clear_core.correct.judging import JUDGE_SIGNALS, pool_judges
from clear_core.store.proposal_detail import confident_undecided, proposal_detail
from ui import queue, state, widgets

LABELS = {"judge_llm": ("LLM judge", "the model comparing original and fix in both orders"),
          "judge_dataset": ("Dataset judge", "the out-of-fold classifier: P(fix) / (P(fix) + P(original))"),
          "judge_scorer": ("Scorer margin", "the scoring model on the fix in the original's place: "
                                            "c(fix) / (c(fix) + c(original))"),
          "relabel_llm": ("LLM on the relabel", "the LLM judge's verdict on the classifier's label")}
s = st.session_state


def _fmt(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def rule_text(settings: dict, eta: float) -> str:
    """The acceptance rule in force for a correction run, and the relabel rule, as one Markdown paragraph."""
    rule = AcceptanceRule.from_dict(settings.get("acceptance"), settings.get("eta", eta))
    text = widgets.literal(rule.describe())
    if "relabel_threshold" in settings:
        text += (f"; a categorical row is relabelled with confidence when the classifier's ratio is >= "
                 f"{settings['relabel_threshold']:.2f}, its class probability reaches the class's "
                 f"{settings.get('relabel_class_quantile', 0):.0%} quantile and the LLM judge is not below "
                 f"{0.5 - settings.get('relabel_llm_veto', 0):.2f}")
    return text + f". The Review page marks fixes with judge ≥ {eta:.2f} as confident."


def explain(ws, ds_id: int, row_idx: int, eta: float) -> None:
    """The row's proposal: each judge's value, the pooled judge_conf and the rule that made it (not) confident."""
    detail = proposal_detail(ws, ds_id, row_idx)
    if detail is None:
        return
    with st.expander("Why this fix is " + ("confident" if (detail["judge_conf"] or 0) >= eta else "not confident"),
                     icon=":material/balance:"):
        parts = detail["components"]
        names = [n for n in LABELS if n in parts or n != "relabel_llm"]
        cols = st.columns(len(names) + 2)
        for col, name in zip(cols, names):
            col.metric(LABELS[name][0], _fmt(parts.get(name)), help=LABELS[name][1])
        pooled = pool_judges(*(parts.get(n, float("nan")) for n in JUDGE_SIGNALS))
        cols[-2].metric("Pooled", _fmt(float(pooled)), help="the judges pooled in log-odds (no opinion adds nothing)")
        cols[-1].metric("judge_conf", _fmt(detail["judge_conf"]),
                        help="the pooled judge on the acceptance rule's scale: its threshold is at eta")
        source = {"relabel": "confident-learning relabel", "icl": "in-context answer",
                  "classifier": "the classifier's label", "finetuned": "the fine-tuned model"}
        st.caption(f"Source: {source.get(detail['source'], widgets.literal(str(detail['source'])))} · correction "
                   f"run {detail['run_id']}. " + rule_text(detail["settings"], eta))


@state.safe
def _accept(ds_id: int, eta: float, thr: dict) -> None:
    ws = state.ws()
    rows = confident_undecided(ws, ds_id, eta)
    s["accept_confident_ok"] = False
    if not len(rows):
        s["_flash"] = ("info", "No undecided row has a confident fix")
        return
    ws.record_decisions(ds_id, rows.tolist(), "accept", state.reviewer(), thresholds=thr)
    s["_undo_before"] = None
    queue.reset()
    s["_flash"] = ("saved", f"Saved: accepted {len(rows):,} confident fixes (one batch; Undo takes it back)")


def accept_confident(ws, ds_id: int, eta: float, thr: dict) -> None:
    """Bulk accept of every undecided row whose latest fix is confident: the count first, then a confirm step."""
    n = len(confident_undecided(ws, ds_id, eta))
    with st.expander(f"Accept all confident fixes ({n:,} rows)", icon=":material/done_all:"):
        if not n:
            st.caption("No undecided row has a confident fix.")
            return
        st.markdown(f"This accepts the proposed fix of **{n:,} undecided rows** whose fix is confident "
                    f"(judge ≥ {eta:.2f}), in the whole dataset, whatever the filter above.")
        ok = st.checkbox(f"Yes, accept these {n:,} fixes", key="accept_confident_ok")
        st.button("Accept all confident", disabled=not ok, key="accept_confident", type="primary",
                  on_click=_accept, args=(ds_id, eta, thr))
