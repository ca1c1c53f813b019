"""Pictures: an attention heatmap with token labels, and a run's training curves (PNG)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tandem.errors import DataError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def _writable(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise DataError(f"{out}: the output must be a .png file")
    if not out.parent.exists():
        raise DataError(f"{out}: folder {out.parent} does not exist")
    return out


def plot_attention(src: list[str], out_tokens: list[str], weights: list[list[float]],
                   out: str | Path) -> Path:
    """Rows: output tokens; columns: source tokens."""
    out = _writable(out)
    if len(weights) != len(out_tokens) or any(len(r) != len(src) for r in weights):
        raise DataError(f"attention is {len(weights)}x{len(weights[0]) if weights else 0}, "
                        f"tokens are {len(out_tokens)}x{len(src)}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(3, 0.45 * len(src) + 1.5),
                                    max(2.5, 0.4 * len(out_tokens) + 1.2)))
    im = ax.imshow(weights, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src)), src, rotation=90)
    ax.set_yticks(range(len(out_tokens)), out_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_run(run: str | Path, out: str | Path) -> Path:
    """Loss (train and dev) and the dev metric the run selects on, against steps."""
    run, out = Path(run), _writable(out)
    if not run.is_dir():
        raise DataError(f"{run}: not a run folder")
    from tandem.train.scalars import read

    series = read(run / "scalars.csv") if (run / "scalars.csv").is_file() else {}
    if not series:
        raise DataError(f"{run}: no scalars.csv with values to plot (written by tandem train)")
    metric = "exact_match"
    if (run / "config.yaml").is_file():
        cfg = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
        metric = (cfg.get("train") or {}).get("valid_metric", metric)
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for tag, label in (("train/loss", "train loss"), ("dev/loss", "dev loss")):
        if tag in series:
            steps, values = zip(*series[tag], strict=True)
            left.plot(steps, values, label=label, marker="o" if tag == "dev/loss" else None)
    left.set_xlabel("step")
    left.set_ylabel("loss (per token)")
    left.legend()
    left.grid(alpha=0.3)
    tag = f"dev/{metric}"
    if tag in series:
        steps, values = zip(*series[tag], strict=True)
        right.plot(steps, values, marker="o", color="tab:green")
        right.set_ylabel(metric)
    else:
        right.text(0.5, 0.5, f"no dev values for {metric}", ha="center", va="center")
    right.set_xlabel("step")
    right.grid(alpha=0.3)
    fig.suptitle(run.name)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
