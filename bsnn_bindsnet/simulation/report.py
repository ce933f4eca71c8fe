"""Writing simulation results: JSON summary, per-timestep CSV, accuracy-vs-timesteps plot.

matplotlib is imported only by :func:`plot_accuracy`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from bsnn_bindsnet.checkpoint import atomic_write, atomic_write_text

REPORT_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def accuracy_csv(curves: Mapping[str, Sequence[float]]) -> str:
    """CSV text ``timestep,<name>...`` with one row per timestep ``1..T``."""
    names = list(curves)
    steps = max(len(c) for c in curves.values())
    rows = ["timestep," + ",".join(names)]
    for t in range(steps):
        rows.append(f"{t + 1}," + ",".join(f"{c[t]:.6f}" if t < len(c) else ""
                                           for c in curves.values()))
    return "\n".join(rows) + "\n"


def accuracy_table(curves: Mapping[str, Sequence[float]], ann: Mapping[str, float] | None = None,
                   steps: Sequence[int] = REPORT_STEPS, n: int | None = None) -> str:
    """Markdown table: one row per curve, accuracy (%) at the given timesteps; with ``n``
    (the number of images measured) below 10,000, each with its 95 % interval."""
    from bsnn_bindsnet.analysis.stats import format_accuracy

    fmt = (lambda a: f"{100 * a:.2f}") if n is None else (lambda a: format_accuracy(a, n))
    longest = max(len(c) for c in curves.values())
    cols = [t for t in steps if t <= longest]
    lines = ["| network | ANN | " + " | ".join(f"T={t}" for t in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for name, curve in curves.items():
        ref = (ann or {}).get(name)
        cells = [fmt(curve[t - 1]) if t <= len(curve) else "" for t in cols]
        lines.append(f"| {name} | {'' if ref is None else fmt(ref)} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def ops_table(rows: Mapping[str, Mapping[int, float]]) -> str:
    """Markdown table of a per-timestep quantity (e.g. normalized #OPS) per network."""
    cols = sorted({t for row in rows.values() for t in row})
    lines = ["| network | " + " | ".join(f"T={t}" for t in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[t]:.3f}" if t in row else ""
                                                 for t in cols) + " |")
    return "\n".join(lines)


def write_accuracy_csv(curves: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """Atomically write :func:`accuracy_csv`."""
    return atomic_write_text(accuracy_csv(curves), path)


def plot_accuracy(curves: Mapping[str, Sequence[float]], path: str | Path, *,
                  ann: Mapping[str, float] | None = None, title: str = "") -> Path:
    """Accuracy (%) vs timesteps (log x axis), with each network's ANN accuracy dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, curve) in enumerate(curves.items()):
        color = f"C{i}"
        ax.plot(range(1, len(curve) + 1), [100 * a for a in curve], color=color, label=name)
        if ann and name in ann:
            ax.axhline(100 * ann[name], color=color, ls="--", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("timesteps")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))
