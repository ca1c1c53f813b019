"""Pack a trained G2P run into the model shipped in the package (`make g2p-model` runs it after
training configs/g2p_en_release.yaml): the mean of the run's last checkpoints, weights stored
as float16 (half the size; the model computes in float32 after loading), no optimizer state,
written atomically to src/tandem/models/g2p_en.pt with its facts and sha256 in g2p_en.json.

    python scripts/pack_g2p.py runs/g2p_en_release [--last 5] [--out src/tandem/models]
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
from pathlib import Path

import torch

from tandem import checkpoint
from tandem.g2p import file_sha256
from tandem.train.average import average
from tandem.train.scalars import read_validations

LIMIT_MB = 10.0


def pack(run: Path, out_dir: Path, last: int) -> dict:
    """Write g2p_en.pt and g2p_en.json into `out_dir` from `run`; returns the card's facts."""
    ckpts = checkpoint.numbered(run)[-last:] or [run / "best.pt"]
    with tempfile.TemporaryDirectory() as tmp:
        mean = checkpoint.load(average(ckpts, Path(tmp) / "mean.pt"))
    weights = {k: v.half() if v.is_floating_point() else v for k, v in mean["model"].items()}
    release = {"model": weights, "config": mean["config"], "fields": mean["fields"],
               "structure": mean.get("structure", "seq2seq"),
               "train_state": {"step": mean["train_state"]["step"]},
               "averaged_from": [p.name for p in ckpts]}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = checkpoint.save(release, out_dir / "g2p_en.pt")
    size_mb = path.stat().st_size / 1e6
    if size_mb > LIMIT_MB:
        raise SystemExit(f"{path}: {size_mb:.1f} MB is over the package's {LIMIT_MB} MB")
    valid = read_validations(run)
    best = min((v for v in valid if "seq_error_rate" in v), default=None,
               key=lambda v: v["seq_error_rate"])
    card = {"file": path.name, "sha256": file_sha256(path), "bytes": path.stat().st_size,
            "parameters": sum(v.numel() for v in weights.values()),
            "dtype": "float16 weights (computed in float32)",
            "recipe": "configs/g2p_en_release.yaml", "run": str(run),
            "averaged_from": release["averaged_from"], "steps": release["train_state"]["step"],
            "training_minutes": round(valid[-1]["elapsed_s"] / 60, 1) if valid else None,
            "best_dev": best, "packed": datetime.date.today().isoformat(),
            "torch": torch.__version__}
    (out_dir / "g2p_en.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path)
    p.add_argument("--last", type=int, default=5, help="checkpoints to average")
    p.add_argument("--out", type=Path, default=Path("src/tandem/models"))
    a = p.parse_args()
    print(json.dumps(pack(a.run, a.out, a.last), indent=2))


if __name__ == "__main__":
    main()
