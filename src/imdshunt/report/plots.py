"""Plots of the report, drawn with matplotlib's SVG backend and embedded as data URIs.

An SVG inside ``<img>`` cannot run script or fetch anything, and its ids cannot collide with
the page's, so log-derived labels in a plot stay inert even before matplotlib escapes them.
Mathtext parsing is off: an address or label holding ``$`` is drawn as typed.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

from imdshunt.outputs.common import parse_time

#: Marker colours (colour-blind safe: Okabe-Ito).
THIS_FINDING = ("this finding's address (off-box)", "#D55E00")
OTHER_OFF_BOX = ("another internet address (off-box)", "#E69F00")
ON_BOX = ("on-box: AWS, private or allowlisted address", "#0072B2")
MAX_ROWS = 14

_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "imdshunt",
    "text.parse_math": False,
    "font.size": 9,
    "font.family": "DejaVu Sans",
}


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=96)


def _data_uri(fig) -> str:
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _category(call: dict[str, Any]) -> tuple[str, str]:
    if call.get("this_finding"):
        return THIS_FINDING
    return ON_BOX if call.get("on_box") else OTHER_OFF_BOX


#: Horizontal resolution at which calls are told apart: calls of one address and kind within
#: the same 1/TIME_PIXELS of the time span land on the same pixel of the plot (its axis is
#: about 620 pixels wide at 96 dpi) and are drawn as one marker, at the earliest of them.
TIME_PIXELS = 600
#: Above this many on-box markers (after the merge above) the on-box calls are summarised
#: (:data:`SUMMARY`); off-box calls are always drawn one by one.
DENSE_ON_BOX = 300
#: How dense on-box calls are drawn: ``"buckets"`` (a calls-per-bucket panel above the rows,
#: and each address's active periods as bars) or ``"raster"`` (the markers as one embedded
#: PNG layer). Both keep a timeline under 100 kB whatever the number of calls (measured in
#: docs/report.md); buckets stay sharp at any zoom and count the calls.
SUMMARY = "buckets"
#: Bucket widths a summary may use, in minutes: the first giving at most ~MAX_BUCKETS buckets.
_BUCKET_MINUTES = (1, 5, 15, 30, 60, 180, 360, 720, 1440, 10080)
MAX_BUCKETS = 200


def _bucket_days(span_days: float) -> float:
    for minutes in _BUCKET_MINUTES:
        if span_days * 1440 / minutes <= MAX_BUCKETS:
            return minutes / 1440
    return _BUCKET_MINUTES[-1] / 1440


def _bucket_label(days: float) -> str:
    minutes = round(days * 1440)
    if minutes % 1440 == 0:
        return f"{minutes // 1440} day" + ("s" if minutes > 1440 else "")
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def timeline_svg(
    calls: Sequence[dict[str, Any]], *, title: str = "", summary: str | None = None
) -> str | None:
    """A credential's calls over time, one row per source address, coloured on/off box.

    Off-box calls are drawn one by one (calls on the same pixel of the same row once). When
    on-box calls are dense (more than :data:`DENSE_ON_BOX` markers) they are summarised as
    :data:`SUMMARY` says (or ``summary``), so the plot stays small whatever the volume.
    Returns a ``data:image/svg+xml`` URI, or None when there is nothing to draw.
    """
    import matplotlib
    import matplotlib.dates as mdates

    pts = [(parse_time(c.get("event_time")), c) for c in calls]
    pts = [(t, c) for t, c in pts if t is not None]
    if not pts:
        return None
    summary = summary or SUMMARY
    if summary not in ("buckets", "raster"):
        raise ValueError(f"summary must be 'buckets' or 'raster', not {summary!r}")
    times = [t for t, _ in pts]
    xs = mdates.date2num(times)
    lo = float(xs.min())
    span = max(float(xs.max()) - lo, 10 / 1440)
    pixel = span / TIME_PIXELS
    counts = Counter(str(c.get("src_ip")) for _, c in pts)
    keep = [ip for ip, _ in counts.most_common(MAX_ROWS)]
    own = next((str(c.get("src_ip")) for _, c in pts if c.get("this_finding")), None)
    if own is not None and own not in keep:  # the finding's address always has its row
        keep[-1:] = [own]
    rest = len(counts) - len(keep)
    network = {str(c.get("src_ip")): str(c.get("network") or "") for _, c in pts}
    labels = [f"{ip}  ({network[ip]}, {counts[ip]})" for ip in keep]
    if rest:
        labels.append(f"{rest} other addresses")
    row = {ip: i for i, ip in enumerate(keep)}
    # (category, failed) -> {(row, pixel): earliest x}; calls come in any order.
    marks: dict[tuple[tuple[str, str], bool], dict[tuple[int, int], float]] = {}
    for x, (_, c) in zip(xs.tolist(), pts, strict=True):
        key = (row.get(str(c.get("src_ip")), len(keep)), int((x - lo) // pixel))
        group = marks.setdefault((_category(c), bool(c.get("error_code"))), {})
        if key not in group or x < group[key]:
            group[key] = x
    dense = sum(len(m) for (cat, _), m in marks.items() if cat == ON_BOX) > DENSE_ON_BOX
    buckets = dense and summary == "buckets"
    with matplotlib.rc_context(_RC):
        rows_height = 0.28 * len(labels)
        fig = _figure(9.0, 1.2 + rows_height + (1.0 if buckets else 0.0))
        if buckets:
            grid = fig.add_gridspec(2, 1, height_ratios=(1.0, max(rows_height, 0.6)), hspace=0.08)
            count_ax = fig.add_subplot(grid[0])
            ax = fig.add_subplot(grid[1], sharex=count_ax)
            width = _bucket_days(span)
            _draw_counts(count_ax, xs, [c for _, c in pts], lo, width)
            count_ax.tick_params(labelbottom=False)
            if title:
                count_ax.set_title(title, loc="left")
        else:
            ax = fig.add_subplot(1, 1, 1)
            if title:
                ax.set_title(title, loc="left")
        for category in (ON_BOX, OTHER_OFF_BOX, THIS_FINDING):
            name, colour = category
            if category == ON_BOX and buckets:
                on_box = {**marks.get((ON_BOX, False), {}), **marks.get((ON_BOX, True), {})}
                _draw_active_periods(ax, on_box, lo, pixel, width, colour, name)
                continue
            for failed, marker in ((False, "o"), (True, "x")):
                part = marks.get((category, failed))
                if not part:
                    continue
                # Line2D markers, not a scatter: SVG then writes the style once per layer,
                # not once per marker (a third of the size).
                style: dict[str, Any] = (
                    {"markeredgewidth": 1.2, "markeredgecolor": colour}
                    if failed
                    else {"markeredgewidth": 0.4, "markeredgecolor": "white"}
                )
                ax.plot(
                    list(part.values()),
                    [r for r, _ in part],
                    linestyle="none",
                    marker=marker,
                    markersize=4.25,
                    color=colour,
                    alpha=0.8,
                    label=name + (" (failed calls)" if failed else ""),
                    rasterized=dense and category == ON_BOX and summary == "raster",
                    **style,
                )
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel("time (UTC)")
        _time_axis(ax, times)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
        return _data_uri(fig)


def _draw_counts(ax, xs, calls: Sequence[dict[str, Any]], lo: float, width: float) -> None:
    """Calls per bucket, on-box and off-box, as two step lines."""
    import numpy as np

    n = int((float(xs.max()) - lo) // width) + 1
    edges = lo + width * np.arange(n + 1)
    index = ((xs - lo) // width).astype(int)
    off = np.array([not c.get("on_box") for c in calls])
    for name, colour, sel in (
        ("on-box calls", ON_BOX[1], ~off),
        ("off-box calls", THIS_FINDING[1], off),
    ):
        if sel.any():
            ax.stairs(np.bincount(index[sel], minlength=n), edges, color=colour, label=name)
    ax.set_ylabel(f"calls / {_bucket_label(width)}", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)


def _draw_active_periods(
    ax,
    marks: dict[tuple[int, int], float],
    lo: float,
    pixel: float,
    width: float,
    colour: str,
    name: str,
) -> None:
    """Each row's on-box calls as bars over the buckets in which it made any."""
    by_row: dict[int, set[int]] = {}
    for (r, px), _ in marks.items():
        by_row.setdefault(r, set()).add(int((px * pixel) // width))
    label = name + f" (summarised: active {_bucket_label(width)} periods)"
    for r, active in sorted(by_row.items()):
        runs: list[tuple[float, float]] = []
        for b in sorted(active):
            start = lo + b * width
            if runs and abs(runs[-1][0] + runs[-1][1] - start) < width / 2:
                runs[-1] = (runs[-1][0], runs[-1][1] + width)
            else:
                runs.append((start, width))
        ax.broken_barh(runs, (r - 0.3, 0.6), facecolors=colour, alpha=0.45, label=label)
        label = None


def _time_axis(ax, times: Sequence[dt.datetime]) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(tz=dt.UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=dt.UTC))
    lo, hi = min(times), max(times)
    if lo == hi:
        ax.set_xlim(lo - dt.timedelta(minutes=5), hi + dt.timedelta(minutes=5))


_CHAIN_STEPS = {
    "ssrf_attempt": ("SSRF attempt", "#CC79A7", 0),
    "first_off_box_use": ("credential stolen: first off-box use", "#D55E00", 1),
    "last_use": ("last use seen", "#E69F00", 2),
}


def chain_svg(chain: dict[str, Any]) -> str | None:
    """An ``imds_theft_chain`` as attempt → theft → use along a time axis."""
    import matplotlib

    steps = []
    for step in chain.get("timeline") or []:
        t = parse_time(step.get("time"))
        if t is not None:
            steps.append(
                (
                    t,
                    _CHAIN_STEPS.get(
                        str(step.get("event")), (str(step.get("event")), "#999999", 3)
                    ),
                )
            )
    if not steps:
        return None
    with matplotlib.rc_context(_RC):
        fig = _figure(9.0, 1.1)
        ax = fig.add_subplot(1, 1, 1)
        times = [t for t, _ in steps]
        ax.plot(times, [0] * len(times), color="#888888", linewidth=1, zorder=1)
        seen = set()
        for t, (label, colour, _level) in steps:
            ax.scatter([t], [0], s=70, c=colour, zorder=2,
                       label=None if label in seen else label)  # fmt: skip
            seen.add(label)
        ax.set_yticks([])
        ax.set_ylim(-1, 1)
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
        _time_axis(ax, times)
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, 1.6), ncol=3, frameon=False)
        return _data_uri(fig)
