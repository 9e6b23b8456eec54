"""What `hf-tip compare` writes: `results.json` (every run), `results.md` (the tables) and `accuracy_vs_shots.png`
(test accuracy against shots, one line per method, as Figure 4 of the Tip-Adapter paper), from a
[`~compare.ComparisonResult`]. The plot needs matplotlib (`pip install hf-tip[compare]`); it draws with the Agg
backend, so no display is needed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from .compare import METHOD_LABELS, ComparisonResult

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
PLOT_PNG = "accuracy_vs_shots.png"


def _cell(cell: dict | None) -> str:
    if cell is None:
        return "—"
    return f"{cell['mean']:.2f} ± {cell['std']:.2f}" if cell["n"] > 1 else f"{cell['mean']:.2f}"


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def format_markdown(result: ComparisonResult, title: str | None = None) -> str:
    """Markdown: test accuracy (%) mean ± std over seeds per method and shot count; the hyper-parameters chosen on
    validation (per seed); the mean fit seconds."""
    summary, shots = result.summary(), result.num_shots
    header = "| method | " + " | ".join(f"{k}-shot" for k in shots) + " |"
    rule = "|---|" + "---:|" * len(shots)
    lines = [f"## {title or 'Few-shot methods compared'}", ""]
    lines += [
        f"Backbone: `{result.backbone}`. {len(result.class_names)} classes; validation {result.num_validation} and "
        f"test {result.num_test} images, shared by every method; seeds {', '.join(map(str, result.seeds))} (the same "
        "few-shot sample per seed for every method). Test accuracy (%), mean ± std over seeds.",
        "",
        header,
        rule,
    ]
    for method in result.methods:
        cells = summary.get(method, {})
        lines.append(f"| {METHOD_LABELS[method]} | " + " | ".join(_cell(cells.get(k)) for k in shots) + " |")
    lines += ["", "### Hyper-parameters chosen on validation (seed: values)", "", header, rule]
    for method in result.methods:
        row = []
        for k in shots:
            runs = [r for r in result.runs if r.method == method and r.num_shots == k]
            texts = [
                f"{r.seed}: " + ", ".join(f"{n}={_value(v)}" for n, v in r.hyperparameters.items())
                for r in runs
                if r.hyperparameters
            ]
            row.append("<br>".join(texts) or "—")
        lines.append(f"| {METHOD_LABELS[method]} | " + " | ".join(row) + " |")
    lines += ["", "### Fit seconds (mean over seeds; fit + search + training, shared encoding excluded)", ""]
    lines += [header, rule]
    for method in result.methods:
        cells = summary.get(method, {})
        row = [f"{cells[k]['fit_seconds']:.2f}" if k in cells else "—" for k in shots]
        lines.append(f"| {METHOD_LABELS[method]} | " + " | ".join(row) + " |")
    lines += ["", f"Shared encoding (validation, test, views of each seed): {result.encode_seconds:.1f} s."]
    return "\n".join(lines) + "\n"


def plot_accuracy(result: ComparisonResult, path: str | Path, title: str | None = None) -> Path:
    """`accuracy_vs_shots.png`: test accuracy (%, mean over seeds, ± std shaded) against shots, one line per
    method."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "The plot needs matplotlib: `pip install matplotlib` (or `pip install hf-tip[compare]`)."
        ) from error
    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    summary, shots = result.summary(), sorted(result.num_shots)
    figure, axes = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    try:
        for method in result.methods:
            cells = summary.get(method, {})
            xs = [k for k in shots if k in cells]
            means = [cells[k]["mean"] for k in xs]
            stds = [cells[k]["std"] for k in xs]
            style = "--" if method == "zero-shot" else "-"
            (line,) = axes.plot(xs, means, style, marker="o", label=METHOD_LABELS[method])
            if len(result.seeds) > 1:
                low = [m - s for m, s in zip(means, stds, strict=True)]
                high = [m + s for m, s in zip(means, stds, strict=True)]
                axes.fill_between(xs, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
        axes.set_xscale("log", base=2)
        axes.set_xticks(shots, [str(k) for k in shots])
        axes.minorticks_off()
        axes.set_xlabel("shots per class")
        axes.set_ylabel("test accuracy (%)")
        axes.set_title(textwrap.fill(title or f"Few-shot methods ({result.backbone})", 70), fontsize=9)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        path = Path(path)
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path


def write_report(result: ComparisonResult, output_dir: str | Path, extra: dict | None = None,
                 title: str | None = None) -> dict[str, Path]:  # fmt: skip
    """Write `results.json` (the result's `to_dict()` plus `extra`), `results.md` and `accuracy_vs_shots.png` into
    `output_dir`; returns their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / RESULTS_JSON, "markdown": output_dir / RESULTS_MD, "plot": output_dir / PLOT_PNG}
    paths["json"].write_text(json.dumps({**(extra or {}), **result.to_dict()}, indent=2) + "\n")
    paths["markdown"].write_text(format_markdown(result, title))
    plot_accuracy(result, paths["plot"], title)
    return paths


__all__ = ["PLOT_PNG", "RESULTS_JSON", "RESULTS_MD", "format_markdown", "plot_accuracy", "write_report"]
