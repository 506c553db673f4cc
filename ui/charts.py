"""Plotly figures of the Explore page, built from small frames and arrays (never from raw rows), and what a click
on one of them picks.

One palette throughout: a bar or a dot takes the colour of its rows' band (keep / review / drop, as in every page),
the confidence histogram has a line at each threshold, and each signal histogram stacks its bars by band, so the
picture shows how well the signal separates the rows the confidence keeps from those it drops.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from clear_core.filtering import BANDS, band_codes
from clear_core.signals import REGISTRY

from .widgets import BAND_COLORS

BINS = 40  # the store's histogram bins: equal width over [0, 1], the last one includes 1
_NEUTRAL = "#64748b"
_LAYOUT = dict(margin=dict(l=10, r=10, t=36, b=10), height=280, bargap=0.04, showlegend=False,
               plot_bgcolor="white", font=dict(size=12), hovermode="x")


def readable(v) -> str:
    """A value for a label or a hover: 3 significant digits, and a small one in exponent form (1.2e-4, where three
    decimals would say 0.000); NaN as a dash."""
    if v is None or v != v:
        return "—"
    v = float(v)
    if v == 0 or 1e-3 <= abs(v) < 1e4:
        return f"{v:.3g}"
    mantissa, exp = f"{v:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exp)}"


def title_of(name: str) -> str:
    """The plain-language name of a signal (the registry's label), or the name of one the registry lacks."""
    return REGISTRY[name].title if name in REGISTRY else name


def order_by_weight(names, weights: dict | None) -> tuple[list[str], list[str]]:
    """(signals that count in the run, heaviest first; signals of weight 0). Without weights (a run not combined
    yet) every signal counts, in the given order."""
    if not weights:
        return list(names), []
    rank = sorted(names, key=lambda n: -float(weights.get(n, 0.0)))
    return [n for n in rank if weights.get(n, 0.0) > 0], [n for n in rank if not weights.get(n, 0.0) > 0]


def bin_index(values) -> np.ndarray:
    """Each value's bin of the store's histogram (BINS equal bins over [0, 1]); BINS (no bar) for NaN or a value
    outside [0, 1]. An extra slot rather than a mask: band_split then counts with one add and one bincount."""
    v = np.asarray(values, dtype=float)
    ok = (v >= 0.0) & (v <= 1.0)
    out = np.full(v.shape, BINS, dtype=np.int32)
    out[ok] = np.minimum(np.floor(v[ok] * BINS), BINS - 1)
    return out


def band_split(bins: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """counts[band code, bin]: how many rows of each band fall in each bin (rows in no bin left out)."""
    flat = np.bincount(codes.astype(np.int32) * (BINS + 1) + bins, minlength=len(BANDS) * (BINS + 1))
    return flat.reshape(len(BANDS), BINS + 1)[:, :BINS]


def _edges() -> tuple[np.ndarray, np.ndarray]:
    edges = np.linspace(0.0, 1.0, BINS + 1)
    return edges[:-1], edges[1:]


def _bar_hover(lo, hi) -> list[str]:
    return [f"{readable(a)}–{readable(b)}" for a, b in zip(lo, hi)]


def _figure(traces: list[dict], layout: dict) -> go.Figure:
    """A figure from plain dicts, unchecked: plotly's property validation costs ten times the rest of building a
    histogram, on every threshold change (the tests and the browser test check what is drawn)."""
    return go.Figure({"data": traces, "layout": layout}, _validate=False)


def histogram(hist: pd.DataFrame, title: str, t_drop: float | None = None, t_keep: float | None = None) -> go.Figure:
    """Bars of a store histogram (bin_lo, bin_hi, count); with thresholds, bars take their band's colour and the
    bands are shaded behind them, with a line at each threshold. Shapes go in the layout directly: plotly's
    add_vline / add_vrect helpers cost more than the rest of the figure. customdata: (bin_lo, bin_hi, -1)."""
    lo, hi = hist["bin_lo"].to_numpy(), hist["bin_hi"].to_numpy()
    centers, shapes, notes = (lo + hi) / 2, [], []
    colors = [_NEUTRAL] * len(hist)
    if t_drop is not None and t_keep is not None:
        colors = [BAND_COLORS[BANDS[c]] for c in band_codes(centers, t_drop, t_keep)]
        for x0, x1, band in ((0.0, t_drop, "drop"), (t_drop, t_keep, "review"), (t_keep, 1.0, "keep")):
            if x1 > x0:
                shapes.append(dict(type="rect", xref="x", yref="paper", x0=x0, x1=x1, y0=0, y1=1, line_width=0,
                                   fillcolor=BAND_COLORS[band], opacity=0.07, layer="below"))
        for x, band, text, side in ((t_drop, "drop", f"drop < {readable(t_drop)}", "right"),
                                    (t_keep, "keep", f"keep ≥ {readable(t_keep)}", "left")):
            shapes.append(dict(type="line", xref="x", yref="paper", x0=x, x1=x, y0=0, y1=1,
                               line=dict(color=BAND_COLORS[band], width=2, dash="dash")))
            notes.append(dict(x=x, y=1.0, xref="x", yref="paper", text=text, showarrow=False, xanchor=side,
                              yanchor="bottom", font=dict(size=11, color=BAND_COLORS[band])))
    bar = dict(type="bar", x=centers, y=hist["count"].to_numpy(), width=hi - lo,
               marker=dict(color=colors, line=dict(width=0)),
               customdata=np.column_stack([lo, hi, np.full(len(lo), -1)]), hovertext=_bar_hover(lo, hi),
               hovertemplate="%{hovertext}: %{y:,} rows · click to review them<extra></extra>")
    return _figure([bar], dict(_LAYOUT, title=dict(text=title, font=dict(size=14)), shapes=shapes, annotations=notes,
                               xaxis=dict(range=[0, 1], showgrid=False), yaxis=dict(gridcolor="#eef0f4")))


def signal_histogram(counts: np.ndarray, name: str, weight: float | None, small: bool = False) -> go.Figure:
    """One signal's histogram, its bars stacked by band (counts from band_split), titled with its plain-language
    name and its weight in the run. `small`: a signal that does not count, drawn low and pale.
    customdata: (bin_lo, bin_hi, band code)."""
    lo, hi = _edges()
    traces = []
    for code in (BANDS.index("drop"), BANDS.index("review"), BANDS.index("keep")):  # drop at the bottom
        band = BANDS[code]
        traces.append(dict(type="bar", x=(lo + hi) / 2, y=counts[code], width=hi - lo, name=band.capitalize(),
                           marker=dict(color=BAND_COLORS[band], line=dict(width=0), opacity=0.45 if small else 0.9),
                           customdata=np.column_stack([lo, hi, np.full(BINS, code)]), hovertext=_bar_hover(lo, hi),
                           hovertemplate=f"%{{hovertext}}: %{{y:,}} rows in {band} · click to review them"
                                         "<extra></extra>"))
    weight_text = "" if weight is None else f" · weight {readable(weight)}"
    text = f"<b>{title_of(name)}</b>{weight_text}<br><span style='font-size:11px;color:#6b7280'>{name}</span>"
    return _figure(traces, dict(_LAYOUT, barmode="stack", height=170 if small else 250, hovermode="closest",
                                margin=dict(l=10, r=10, t=48, b=10),
                                title=dict(text=text, font=dict(size=12 if small else 14)),
                                xaxis=dict(range=[0, 1], showgrid=False), yaxis=dict(gridcolor="#eef0f4")))


def scatter(points: pd.DataFrame, x: str, y: str, t_drop: float, t_keep: float) -> go.Figure:
    """Two signals against each other, one dot per row, coloured by the row's band. customdata: the row."""
    codes = band_codes(points["confidence"].to_numpy(dtype=float), t_drop, t_keep)
    traces = []
    for code, band in enumerate(BANDS):
        part = points[codes == code]
        hover = [f"row {int(r)}<br>{x} {readable(a)}<br>{y} {readable(b)}"
                 for r, a, b in zip(part["row_idx"], part[x], part[y])]
        traces.append(go.Scattergl(x=part[x].to_numpy(), y=part[y].to_numpy(), mode="markers",
                                   name=band.capitalize(), customdata=part["row_idx"].to_numpy(),
                                   marker=dict(color=BAND_COLORS[band], size=5, opacity=0.6), hovertext=hover,
                                   hovertemplate="%{hovertext}<extra></extra>"))
    axis = dict(range=[-0.02, 1.02], gridcolor="#eef0f4")
    return go.Figure(traces, layout=dict(_LAYOUT, height=360, showlegend=True, hovermode="closest",
                                         legend=dict(orientation="h", y=1.08, x=0), dragmode="select",
                                         xaxis=dict(axis, title=f"{title_of(x)} ({x})"),
                                         yaxis=dict(axis, title=f"{title_of(y)} ({y})")))


def _listed(custom) -> list:
    """A point's customdata as a list: the browser sends a row of several values as {"0": a, "1": b, ...}."""
    return [custom[str(i)] for i in range(len(custom))] if isinstance(custom, dict) else list(custom)


def picked_bins(points: list) -> tuple[float, float, int | None] | None:
    """The value range [lo, hi] that the clicked or boxed bars of a histogram cover (empty ones left out), and
    their band code when they are all of one band (None for the confidence histogram's bars or a mix); None when
    nothing is picked.
    hi is just below the last bar's upper edge (the store's bins are half open), except at 1."""
    data = [_listed(p["customdata"]) for p in points if p.get("customdata") is not None and p.get("y") != 0]
    if not data:
        return None
    lo, hi = min(float(d[0]) for d in data), max(float(d[1]) for d in data)
    codes = {int(d[2]) for d in data}
    code = codes.pop() if len(codes) == 1 and -1 not in codes else None
    return lo, (hi if hi >= 1.0 else math.nextafter(hi, 0.0)), code


def bar_rows(frame: pd.DataFrame, signal: str, pick: tuple, t_drop: float, t_keep: float):
    """(rows, Review filter, description) of picked histogram bars (picked_bins) over a scores_wide frame holding
    `signal` and the confidence: the rows whose value lies in the range (and in the band, if one), and the store
    filter that holds exactly them (its signal range is inclusive at both ends, as here)."""
    lo, hi, code = pick
    values = frame[signal].to_numpy(dtype=float)
    inside = (values >= lo) & (values <= hi)
    if code is not None:
        inside &= band_codes(frame["confidence"].to_numpy(dtype=float), t_drop, t_keep) == code
    band = "all" if code is None else BANDS[code]
    what = f"{title_of(signal)} {readable(lo)}–{readable(hi)}" + ("" if code is None else f", {band} band")
    rows = frame["row_idx"].to_numpy()[inside].astype(int).tolist()
    return rows, {"band": band, "signal_ranges": {signal: (lo, hi)}}, what


def dot_rows(points: list, x: str, y: str):
    """(rows, Review filter, description) of clicked or selected scatter dots, None for none. The filter is the
    box around them (one dot: its own values); it holds the same rows unless unsampled or unselected rows lie in
    that box."""
    rows = sorted({int(p["customdata"]) for p in points if p.get("customdata") is not None})
    if not rows:
        return None
    xs, ys = [float(p["x"]) for p in points], [float(p["y"]) for p in points]
    ranges = {x: (min(xs), max(xs)), y: (min(ys), max(ys))}
    return rows, {"signal_ranges": ranges}, f"{len(rows):,} dot(s) of {title_of(x)} against {title_of(y)}"


def review_pick(run_id: int, rows: list[int], filters: dict, what: str) -> dict:
    """What the Review page reads from st.session_state["review_rows"]: the picked row set of a run, the store
    filter (review_window's arguments) that holds them, over every band and decision, and a description."""
    return {"run_id": int(run_id), "rows": list(rows), "what": what,
            "filters": {"band": "all", "search": None, "has_proposal": None, "undecided_only": False, **filters}}
