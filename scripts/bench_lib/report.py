"""Presenting a run: the lines printed after each figure, the markdown results table (the
README's), and one PNG chart per run (a panel per figure). Each figure module provides
``rows(result)`` (table rows) and ``chart(ax, result)`` (its panel)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .stack import log


def _module(name: str):
    return importlib.import_module(f".figures.{name}", __package__)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def _target_text(t: dict[str, Any] | None) -> str:
    if not t:
        return ""
    mark = {True: "✅", False: "❌", None: "?"}[t["pass"]]
    return f"{t['op']} {fmt(t['target'])} {mark}"


def print_figure(name: str, result: dict[str, Any], targets: list) -> None:
    print(f"\n## {name}")
    for row in _module(name).rows(result):
        print(f"  {row['measure']:<46} sidecar {fmt(row.get('sidecar')):>10}   "
              f"baseline {fmt(row.get('baseline')):>10}   {row.get('result', '')}")
    for t in targets:
        d = t.to_dict()
        print(f"  target: {d['name']}: {fmt(d['value'])} {_target_text(d)}")


def markdown_table(doc: dict[str, Any]) -> str:
    meta = doc["meta"]
    m = meta.get("machine", {})
    load = meta.get("load_average_before") or []
    targets: dict[tuple[str, str], dict[str, Any]] = {(t["figure"], t["name"]): t for t in doc.get("targets", [])}
    lines = [
        f"Measured {meta.get('timestamp')} ({'quick' if meta.get('quick') else 'full'} run, commit "
        f"{meta.get('git')}) on {m.get('cores')} cores ({m.get('cpu')}), {m.get('memory_gb')} GiB, no GPU; "
        f"load average before the run {', '.join(f'{x:.2f}' for x in load)}.",
        "",
        "| figure | measure | sidecar | baseline | result | target |",
        "|---|---|---:|---:|---|---|",
    ]
    for name, result in doc.get("figures", {}).items():
        for row in _module(name).rows(result):
            t = targets.get((name, row.get("target", "")))
            lines.append(f"| {name} | {row['measure']} | {fmt(row.get('sidecar'))} | {fmt(row.get('baseline'))} | "
                         f"{row.get('result', '')} | {_target_text(t)} |")
    for name, err in doc.get("errors", {}).items():
        lines.append(f"| {name} | failed: {err} | | | | |")
    return "\n".join(lines)


def write_png(doc: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no chart (pip install -e '.[bench]')")
        return None
    figures = doc.get("figures", {})
    if not figures:
        return None
    n = len(figures)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.2 * rows), squeeze=False)
    for ax, (name, result) in zip(axes.flat, figures.items(), strict=False):
        try:
            _module(name).chart(ax, result)
        except Exception as exc:  # a panel must never cost the run its JSON
            ax.text(0.5, 0.5, f"{name}: no chart ({exc})", ha="center", va="center", fontsize=8)
        ax.set_title(ax.get_title() or name, fontsize=10)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    meta = doc["meta"]
    m = meta.get("machine", {})
    fig.suptitle(f"es-inference-sidecar bench {meta.get('timestamp')} ({'quick' if meta.get('quick') else 'full'}) "
                 f"— {m.get('cores')} cores, {m.get('cpu', '')[:40]}, load {meta.get('load_average_before', [0])[0]:.1f}",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ratio_bars(ax, labels: list[str], sidecar: list[float], baseline: list[float], *, unit: str,
               title: str, base_label: str = "baseline") -> None:
    """Side-by-side bars: sidecar vs its baseline per measure."""
    import numpy as np

    x = np.arange(len(labels))
    ax.bar(x - 0.2, baseline, 0.4, label=base_label, color="#9aa5b1")
    ax.bar(x + 0.2, sidecar, 0.4, label="sidecar", color="#1f77b4")
    for i, (s, b) in enumerate(zip(sidecar, baseline, strict=True)):
        if b:
            ax.text(i + 0.2, s, f"{s / b:.2f}×", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend(fontsize=8)
