"""The load benchmark's picture: throughput against the quota line, and the queues behind it."""

from __future__ import annotations

from typing import Any

#: Seconds of the moving average drawn over the per-second IndexFaces calls.
SMOOTHING_S = 10


def plot_load(report: dict[str, Any], path: str) -> None:
    """Write a PNG with IndexFaces/AssociateFaces calls per second and the queue depths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = report["timeline"]
    calls = timeline["calls_per_second"]
    quotas = timeline["quota_tps"]
    index = calls["IndexFaces"]
    seconds = list(range(len(index)))
    fig, (top, middle, bottom) = plt.subplots(
        3, 1, figsize=(10, 8.5), sharex=True, height_ratios=[3, 1.4, 2]
    )
    top.plot(seconds, index, color="#9ecae1", linewidth=0.8, label="IndexFaces calls / s")
    top.plot(
        seconds,
        _moving_mean(index, SMOOTHING_S),
        color="#08519c",
        linewidth=1.6,
        label=f"IndexFaces, {SMOOTHING_S} s mean",
    )
    top.axhline(
        quotas["IndexFaces"],
        color="#cb181d",
        linestyle="--",
        linewidth=1.2,
        label=f"IndexFaces quota ({quotas['IndexFaces']:g} TPS)",
    )
    top.set_ylabel("calls per second")
    top.set_title(
        f"{report['photos']:,} photos in {report['seconds']:,.0f} s: IndexFaces sustained "
        f"{report['index_rate_vs_quota']:.0%} of its quota, {report['throttled_calls']:,} "
        f"throttled calls"
    )
    top.legend(loc="lower center", fontsize=8)
    top.grid(alpha=0.3)

    associate = calls["AssociateFaces"]
    middle.bar(seconds, associate, width=1.0, color="#74c476", label="AssociateFaces calls / s")
    middle.axhline(
        quotas["AssociateFaces"],
        color="#cb181d",
        linestyle="--",
        linewidth=1.0,
        label=f"AssociateFaces quota ({quotas['AssociateFaces']:g} TPS)",
    )
    middle.set_ylabel("calls / s")
    middle.legend(loc="upper right", fontsize=8)
    middle.grid(alpha=0.3)

    queues = timeline["queues"]
    times = [sample["t"] for sample in queues]
    for name, colour in (("upload", "#6a51a3"), ("association", "#e6550d")):
        column = next((k for k in (queues[0] if queues else {}) if k.endswith(f"-{name}")), None)
        if column is not None:
            bottom.plot(
                times,
                [sample[column] for sample in queues],
                color=colour,
                label=f"{name} queue (messages)",
            )
    bottom.set_xlabel("seconds since the run started")
    bottom.set_ylabel("queue depth")
    bottom.legend(loc="upper right", fontsize=8)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _moving_mean(values: list[int], width: int) -> list[float]:
    out: list[float] = []
    total = 0.0
    for i, value in enumerate(values):
        total += value
        if i >= width:
            total -= values[i - width]
        out.append(total / min(i + 1, width))
    return out
