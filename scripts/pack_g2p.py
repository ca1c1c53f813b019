"""Pack a trained G2P run into the model shipped in the package (`make g2p-model` runs it after
training configs/g2p_en_release.yaml): the mean of the run's last checkpoints, weights stored
as float16 (half the size; the model computes in float32 after loading), no optimizer state,
written atomically to models/g2p_en.pt (the release checkpoint, kept in the repository, not in
the package) with its facts and sha256 in g2p_en.json; then exported for the lean runtime into
the package: src/tandem/models/g2p_en (float32 arithmetic, the float16 weights stored as such)
and src/tandem/models/g2p_en_int8 (`tandem export --quantize int8`).

    python scripts/pack_g2p.py runs/g2p_en_release [--last 5] [--out models]
    python scripts/pack_g2p.py --rescore [--out models]
    python scripts/pack_g2p.py --export [--out models] [--package src/tandem/models]

--rescore scores the packed model again on the held-out words and rewrites only the card's
`held_out` field (the model file and its sha256 stay as they are); --export only exports the
packed model again.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
from pathlib import Path

import torch

from tandem import checkpoint
from tandem.pronounce import file_sha256
from tandem.train.average import average
from tandem.train.scalars import read_validations

LIMIT_MB = 10.0


def held_out_scores(model: Path, dev_words: int, beams: tuple[int, ...] = (1, 2, 5)) -> dict:
    """The packed model on the words the release recipe held out of the dictionary (by
    hash), for each search width (`tandem g2p` searches with DEFAULT_BEAM): WER and PER with
    stress, and with the stress digits stripped from both sides."""
    import time

    from tandem.data.cmudict import hold_out_by_word, package_dictionary
    from tandem.evaluate import group_references
    from tandem.pronounce import DEFAULT_BEAM, pronunciation_scores
    from tandem.structures.translator import load

    _, dev = hold_out_by_word(package_dictionary(stress=True), dev_words)
    words, refs = group_references(dev)
    tr = load(model, device="cpu")
    out = {"words": len(words), "tandem_g2p_beam": DEFAULT_BEAM, "by_beam": {}}
    tr.translate(words[:256], beam=max(beams), nbest=1, sample=False)  # warm-up, not timed
    for beam in beams:
        t0 = time.perf_counter()
        hyps = tr.translate(words, beam=beam, nbest=1, sample=False)
        seconds = time.perf_counter() - t0
        out["by_beam"][str(beam)] = {"decode_s": round(seconds, 1),
                                     "words_per_s": round(len(words) / seconds, 1),
                                     **pronunciation_scores(hyps, refs)}
    return out


def rescore(out_dir: Path) -> dict:
    """Score the packed model in `out_dir` again and rewrite its card's `held_out` field."""
    card_path = out_dir / "g2p_en.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    model = out_dir / card["file"]
    if file_sha256(model) != card["sha256"]:
        raise SystemExit(f"{model}: its sha256 does not match {card_path}; repack it instead")
    dev_words = checkpoint.load(model)["config"]["data"]["corpus_dev_words"]
    card["held_out"] = held_out_scores(model, dev_words)
    card["held_out_scored"] = datetime.date.today().isoformat()
    write_card(card_path, card)
    return card


def write_card(path: Path, card: dict) -> None:
    """Write the card atomically: a failed write leaves the old card whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def pack(run: Path, out_dir: Path, last: int) -> dict:
    """Write g2p_en.pt and g2p_en.json into `out_dir` from `run`; returns the card's facts."""
    ckpts = checkpoint.numbered(run)[-last:] or [run / "best.pt"]
    with tempfile.TemporaryDirectory() as tmp:
        mean = checkpoint.load(average(ckpts, Path(tmp) / "mean.pt"))
    weights = {k: v.half() if v.is_floating_point() else v for k, v in mean["model"].items()}
    release = {"model": weights, "config": mean["config"], "fields": mean["fields"],
               "structure": mean.get("structure", "seq2seq"),
               "train_state": {"step": checkpoint.load(ckpts[-1])["train_state"]["step"]},
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
            "recipe": f"configs/{mean['config']['name']}.yaml", "run": str(run),
            "averaged_from": release["averaged_from"], "steps": release["train_state"]["step"],
            "training_minutes": round(valid[-1]["elapsed_s"] / 60, 1) if valid else None,
            "best_dev_greedy": best, "packed": datetime.date.today().isoformat(),
            "torch": torch.__version__,
            "held_out": held_out_scores(path, mean["config"]["data"]["corpus_dev_words"])}
    write_card(out_dir / "g2p_en.json", card)
    return card


def export_release(out_dir: Path, package: Path) -> dict:
    """Export the release checkpoint in `out_dir` into the package folder: g2p_en (float32)
    and g2p_en_int8; -> the files and sizes."""
    from tandem.export import describe, export

    card = json.loads((out_dir / "g2p_en.json").read_text(encoding="utf-8"))
    model = out_dir / card["file"]
    if file_sha256(model) != card["sha256"]:
        raise SystemExit(f"{model}: its sha256 does not match its card; repack it instead")
    done = {}
    for name, quantize in (("g2p_en", None), ("g2p_en_int8", "int8")):
        folder = export(model, package / name, quantize, overwrite=True)
        done[name] = describe(folder)
    total = sum(sum(d["files"].values()) for d in done.values()) / 1e6
    if total > LIMIT_MB:
        raise SystemExit(f"{package}: the exports take {total:.1f} MB, over {LIMIT_MB} MB")
    return done


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, nargs="?")
    p.add_argument("--last", type=int, default=5, help="checkpoints to average")
    p.add_argument("--out", type=Path, default=Path("models"),
                   help="where the release checkpoint and its card are")
    p.add_argument("--package", type=Path, default=Path("src/tandem/models"),
                   help="where the exports the package ships go")
    p.add_argument("--rescore", action="store_true",
                   help="score the packed model in --out again (no run needed)")
    p.add_argument("--export", action="store_true",
                   help="export the packed model in --out again (no run needed)")
    a = p.parse_args()
    if (a.rescore or a.export) == (a.run is not None):
        p.error("give a run to pack, or --rescore / --export, not both")
    if a.rescore:
        print(json.dumps(rescore(a.out), indent=2))
    if a.run is not None:
        print(json.dumps(pack(a.run, a.out, a.last), indent=2))
    if a.run is not None or a.export:
        print(json.dumps(export_release(a.out, a.package), indent=2))


if __name__ == "__main__":
    main()
