"""Plotly figures of the Explore page, built from small frames the store returns (never from raw rows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from clear_core.filtering import BANDS, band_codes

from .widgets import BAND_COLORS

_NEUTRAL = "#64748b"
_LAYOUT = dict(margin=dict(l=10, r=10, t=36, b=10), height=280, bargap=0.04, showlegend=False,
               plot_bgcolor="white", font=dict(size=12), hovermode="x")


def histogram(hist: pd.DataFrame, title: str, t_drop: float | None = None, t_keep: float | None = None) -> go.Figure:
    """Bars of a store histogram (bin_lo, bin_hi, count); with thresholds, bars take their band's colour and the
    bands are shaded behind them, with a line at each threshold. Shapes go in the layout directly: plotly's
    add_vline / add_vrect helpers cost more than the rest of the figure."""
    lo, hi = hist["bin_lo"].to_numpy(), hist["bin_hi"].to_numpy()
    centers, shapes, notes = (lo + hi) / 2, [], []
    colors = [_NEUTRAL] * len(hist)
    if t_drop is not None and t_keep is not None:
        colors = [BAND_COLORS[BANDS[c]] for c in band_codes(centers, t_drop, t_keep)]
        for x0, x1, band in ((0.0, t_drop, "drop"), (t_drop, t_keep, "review"), (t_keep, 1.0, "keep")):
            if x1 > x0:
                shapes.append(dict(type="rect", xref="x", yref="paper", x0=x0, x1=x1, y0=0, y1=1, line_width=0,
                                   fillcolor=BAND_COLORS[band], opacity=0.07, layer="below"))
        for x, band, text, side in ((t_drop, "drop", f"drop < {t_drop:.3f}", "right"),
                                    (t_keep, "keep", f"keep ≥ {t_keep:.3f}", "left")):
            shapes.append(dict(type="line", xref="x", yref="paper", x0=x, x1=x, y0=0, y1=1,
                               line=dict(color=BAND_COLORS[band], width=2, dash="dash")))
            notes.append(dict(x=x, y=1.0, xref="x", yref="paper", text=text, showarrow=False, xanchor=side,
                              yanchor="bottom", font=dict(size=11, color=BAND_COLORS[band])))
    bar = go.Bar(x=centers, y=hist["count"].to_numpy(), width=hi - lo, marker=dict(color=colors, line_width=0),
                 customdata=np.column_stack([lo, hi]),
                 hovertemplate="%{customdata[0]:.3f}–%{customdata[1]:.3f}: %{y:,} rows<extra></extra>")
    return go.Figure(bar, layout=dict(_LAYOUT, title=dict(text=title, font=dict(size=14)), shapes=shapes,
                                      annotations=notes, xaxis=dict(range=[0, 1], showgrid=False),
                                      yaxis=dict(gridcolor="#eef0f4")))


def scatter(points: pd.DataFrame, x: str, y: str, t_drop: float, t_keep: float) -> go.Figure:
    """Two signals against each other, one dot per row, coloured by the row's band."""
    codes = band_codes(points["confidence"].to_numpy(dtype=float), t_drop, t_keep)
    traces = []
    for code, band in enumerate(BANDS):
        part = points[codes == code]
        traces.append(go.Scattergl(x=part[x].to_numpy(), y=part[y].to_numpy(), mode="markers",
                                   name=band.capitalize(), customdata=part["row_idx"].to_numpy(),
                                   marker=dict(color=BAND_COLORS[band], size=5, opacity=0.6),
                                   hovertemplate=f"row %{{customdata}}<br>{x} %{{x:.3f}}<br>{y} %{{y:.3f}}"
                                                 "<extra></extra>"))
    axis = dict(range=[-0.02, 1.02], gridcolor="#eef0f4")
    return go.Figure(traces, layout=dict(_LAYOUT, height=360, showlegend=True, hovermode="closest",
                                         legend=dict(orientation="h", y=1.08, x=0),
                                         xaxis=dict(axis, title=x), yaxis=dict(axis, title=y)))
