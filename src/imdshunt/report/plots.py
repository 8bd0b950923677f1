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


def timeline_svg(calls: Sequence[dict[str, Any]], *, title: str = "") -> str | None:
    """A credential's calls over time, one row per source address, coloured on/off box.

    Returns a ``data:image/svg+xml`` URI, or None when there is nothing to draw.
    """
    import matplotlib

    pts = [(parse_time(c.get("event_time")), c) for c in calls]
    pts = [(t, c) for t, c in pts if t is not None]
    if not pts:
        return None
    with matplotlib.rc_context(_RC):
        counts = Counter(str(c.get("src_ip")) for _, c in pts)
        keep = [ip for ip, _ in counts.most_common(MAX_ROWS)]
        rest = len(counts) - len(keep)
        network = {str(c.get("src_ip")): str(c.get("network") or "") for _, c in pts}
        labels = [f"{ip}  ({network[ip]}, {counts[ip]})" for ip in keep]
        if rest:
            labels.append(f"{rest} other addresses")
        row = {ip: i for i, ip in enumerate(keep)}
        fig = _figure(9.0, 1.2 + 0.28 * len(labels))
        ax = fig.add_subplot(1, 1, 1)
        for name, colour in (ON_BOX, OTHER_OFF_BOX, THIS_FINDING):
            sel = [(t, c) for t, c in pts if _category(c)[0] == name]
            if not sel:
                continue
            for failed, marker in ((False, "o"), (True, "x")):
                part = [(t, c) for t, c in sel if bool(c.get("error_code")) == failed]
                if not part:
                    continue
                ax.scatter(
                    [t for t, _ in part],
                    [row.get(str(c.get("src_ip")), len(keep)) for _, c in part],
                    s=18,
                    c=colour,
                    marker=marker,
                    alpha=0.8,
                    linewidths=1.2 if failed else 0.4,
                    edgecolors=colour if failed else "white",
                    label=name + (" (failed calls)" if failed else ""),
                )
        ax.set_yticks(range(len(labels)), labels)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel("time (UTC)")
        if title:
            ax.set_title(title, loc="left")
        _time_axis(ax, [t for t, _ in pts])
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8)
        return _data_uri(fig)


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
