"""The provisional view of Explore and Review: while a scoring run has no `confidence` yet (its last stage is not
done), the row signals it has committed so far, marked provisional (uncalibrated), so that the pages have
something to show as the run goes on. Redrawn every few seconds while this process's job runs it."""

from __future__ import annotations

import streamlit as st

from clear_core.store.partial import provisional_rows

ROWS_SHOWN = 200
REFRESH_S = 2


def show(ws_path: str, run, page: str) -> None:
    """The banner and the rows committed so far, the lowest provisional value first; `page` names what comes
    once the run is done ("review": decisions, "explore": the calibrated distributions and thresholds)."""
    from . import jobs, state

    job = jobs.current(ws_path)
    live = job is not None and job.alive and job.run_id == run.id

    @st.fragment(run_every=REFRESH_S if live else None)
    def view() -> None:
        now = state.workspace(ws_path).get_run(run.id)
        if live and not job.alive:  # the job ended: the whole page again, with the finished run's scores
            st.rerun(scope="app")
        rows, total = provisional_rows(state.workspace(ws_path), now.id, limit=ROWS_SHOWN)
        after = {"review": "Decisions open", "explore": "The calibrated confidence, its thresholds and bands come"}
        st.info(f"**Provisional (uncalibrated)**: run #{now.id} is {now.status} (stage {now.stage or 'rows'}); "
                f"{total:,} of {now.n_total:,} rows have row signals so far. The value shown is the plain mean of "
                f"each row's signals so far, not its confidence. {after.get(page, 'The final scores come')} when "
                "the run's last stage is done.", icon=":material/hourglass_top:")
        if job is not None and job.run_id == now.id and job.alive:
            st.caption(job.progress_text())
        if rows.empty:
            return
        signals = [c for c in rows.columns if c not in ("row_idx", "provisional", "n_signals", "prompt_text",
                                                          "response")]
        bar = st.column_config.ProgressColumn("provisional", format="%.3f", min_value=0.0, max_value=1.0,
                                              help="mean of the row's signals so far (uncalibrated)")
        st.dataframe(rows[["row_idx", "provisional", *signals, "prompt_text", "response"]], hide_index=True,
                     width="stretch", height=420, key=f"provisional_{page}",
                     column_config={"provisional": bar, "row_idx": "row", "prompt_text": "prompt"})
        st.caption(f"The {min(len(rows), total):,} rows with the lowest provisional value of the {total:,} scored "
                   "so far.")

    view()
