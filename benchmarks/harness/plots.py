"""The report's PNG figures: deliveries/s and p99 latency against the publish rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .servers import LABELS, SERVERS
from .stats import P99_GOAL_MS, Ladder

COLORS = {
    "roomcast": "#1f77b4",
    "roomcast-psio": "#17becf",
    "node": "#2ca02c",
    "plain": "#d62728",
    "floor": "#7f7f7f",
    "floor-write": "#bcbd22",
}
STYLES = {"each": "o-", "shared": "s--"}


def _figure(series: list[tuple[Ladder, str]], title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True)
    for ladder, style in series:
        steps = ladder.steps
        if not steps:
            continue
        rates = [s.rate for s in steps]
        label = f"{LABELS[ladder.server]}, {ladder.topology}"
        color = COLORS.get(ladder.server)
        top.plot(rates, [s.deliveries_per_s for s in steps], style, color=color, label=label)
        p99 = [(s.rate, s.p99_ms) for s in steps if s.p99_ms is not None]
        bottom.plot([r for r, _ in p99], [p for _, p in p99], style, color=color, label=label)
    top.set_yscale("log")
    top.set_ylabel("deliveries/s (log)")
    top.set_title(title)
    top.grid(True, which="both", alpha=0.3)
    top.legend(fontsize="small")
    bottom.axhline(P99_GOAL_MS, color="grey", linestyle=":", linewidth=1)
    bottom.annotate(
        f"p99 goal {P99_GOAL_MS:g} ms",
        (0.01, P99_GOAL_MS),
        xycoords=("axes fraction", "data"),
        textcoords="offset points",
        xytext=(0, 3),
        fontsize="small",
        color="grey",
    )
    bottom.set_yscale("log")
    bottom.set_ylabel("p99 latency, ms (log)")
    bottom.set_xlabel("publishes/s (log)")
    bottom.set_xscale("log")
    bottom.grid(True, which="both", alpha=0.3)
    for axis in (top.yaxis, bottom.yaxis, bottom.xaxis):
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(ticker.NullFormatter())
        axis.set_major_formatter(
            ticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def draw(results: dict[str, Any], img_dir: Path) -> dict[str, Path]:
    """Write the figures that have data; return them by scenario. Solid lines: topology
    `each`; dashed: `shared`."""
    out: dict[str, Path] = {}
    order = {name: i for i, name in enumerate(SERVERS)}
    titles = {
        "fanout": "Fan-out: 1 room, {n} subscribers, HTTP publish",
        "rooms": "Many rooms: {n} clients, HTTP publish",
        "clientpub": "Many rooms: {n} clients, publish from client sockets",
    }
    for key, title in titles.items():
        ladders = sorted(results.get(key, []), key=lambda x: (order[x.server], x.topology))
        if not ladders:
            continue
        series = [(x, STYLES.get(x.topology, "o-")) for x in ladders]
        out[key] = _figure(
            series, title.format(n=ladders[0].subscribers), img_dir / f"bench-{key}.png"
        )
    return out
