"""The structures beyond seq2seq on real data: train each recipe, score it once on its test
split, write JSON (the table of docs/benchmarks.md, "The other RNN structures").

    .venv/bin/python benchmarks/recipes/structures.py ROW [ROW ...] [--no-train] [--set KEY=VALUE]
        [--runs runs/structures] [--results benchmarks/results]

ROWs (each a config in configs/):
- sst2: many-to-one, SST-2 sentences (configs/sst2.yaml); test accuracy and macro-F1;
- sst2_ensemble: the sst2 recipe with --seeds seeds, each averaged over its last 5
  checkpoints, and their ensemble (mean label probabilities);
- names: many-to-one, surname -> language (configs/names_classify.yaml), and beside it the
  PyTorch char-RNN tutorial's model trained the tutorial's way on the same split
  (benchmarks/recipes/names_tutorial.py);
- ud_ewt: synchronous, UD English EWT UPOS (configs/ud_ewt_upos.yaml); test accuracy and
  accuracy on test words never seen in training;
- shakespeare_3min, shakespeare: synchronous, next character of tiny Shakespeare
  (configs/tinyshakespeare_3min.yaml, configs/tinyshakespeare.yaml); val cross-entropy (nats per
  character) and bits per character, the dev curve against time, samples;
- names_generate: one-to-many, a surname from its language (configs/names_generate.yaml);
  held-out perplexity against the same model trained without the language, and the share of
  generated names the `names` classifier assigns to the requested language (needs the names
  row's run).

Every row also reports the training tokens/s, the FLOPs per token of its matrix products and
their share of this machine's float32 matmul peak, and the sha256 of its data files. Writes
benchmarks/results/structures-<date>-<row>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report

import tandem
from tandem.bench import matmul_peak, rnn_flops
from tandem.config import Config, load_config
from tandem.data.corpora import corpus_dir
from tandem.data.readers import read_label_folder
from tandem.train.scalars import read, read_validations
from tandem.train.trainer import train

CONFIGS = {"sst2": "configs/sst2.yaml", "names": "configs/names_classify.yaml",
           "ud_ewt": "configs/ud_ewt_upos.yaml",
           "shakespeare_3min": "configs/tinyshakespeare_3min.yaml",
           "shakespeare": "configs/tinyshakespeare.yaml",
           "names_generate": "configs/names_generate.yaml"}
SAMPLE_PROMPTS = ["ROMEO:", "First Citizen:\n", "KING HENRY VI:\nWhat"]


def data_signature(cfg: Config) -> dict:
    """sha256 of the corpus folder's files (their SHA256SUMS when it has one)."""
    root = corpus_dir(cfg.data)
    sums = root / "SHA256SUMS"
    if sums.is_file():
        return {"folder": str(root), "sha256sums_sha256":
                hashlib.sha256(sums.read_bytes()).hexdigest()}
    files = sorted(p for p in root.iterdir() if p.is_file())
    return {"folder": str(root), "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                                           for p in files}}


def flops_per_token(cfg: Config, pred) -> float:
    """Training FLOPs (3x the forward's matrix products) per predicted token: per character
    for the lm, per word for the tagger (its character view over the word's characters
    included, at the training words' mean length), per text token for the classifier."""
    m = cfg.model
    vocab, labels = len(pred.fields.vocab), len(pred.fields.labels)
    if m.structure in ("lm", "generate"):
        H, E = m.hidden_size, m.emb_size
        inp = E + (H if m.structure == "generate" and m.conditioning == "every_step" else 0)
        fwd = sum(rnn_flops(m.cell, inp if i == 0 else H, H) for i in range(m.dec_layers))
        fwd += 2 * H * vocab
        return 3.0 * fwd
    He = m.enc_hidden_size or m.hidden_size
    dirs = 2 if m.bidirectional else 1
    extra = 0.0
    inp0 = m.emb_size
    if m.structure == "tag" and m.char_hidden_size:
        words = list(pred.fields.seen_words)
        mean_len = sum(map(len, words)) / max(len(words), 1)
        extra = mean_len * 2 * rnn_flops(m.cell, m.char_emb_size, m.char_hidden_size // 2)
        inp0 += m.char_hidden_size
    enc = sum(dirs * rnn_flops(m.cell, inp0 if i == 0 else He, He // dirs)
              for i in range(m.enc_layers))
    out = 2 * He * labels if m.structure == "tag" else 0
    return 3.0 * (enc + extra + out)


def speed(run: Path, cfg: Config, pred) -> dict:
    """Training tokens/s (the median of the logged values), FLOPs per token and the share of
    the matmul peak measured now with the run's thread count."""
    scal = read(run / "scalars.csv").get("train/tokens_per_s", [])
    values = sorted(v for _, v in scal)
    tps = values[len(values) // 2] if values else None
    threads = cfg.train.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    peak = matmul_peak(3.0)
    fpt = flops_per_token(cfg, pred)
    out = {"tokens_per_s_median": round(tps, 1) if tps else None, "threads": threads,
           "flops_per_token": round(fpt), "matmul_peak_gflops": round(peak, 1)}
    if tps:
        out["gflops"] = round(tps * fpt / 1e9, 2)
        out["share_of_matmul_peak"] = round(tps * fpt / 1e9 / peak, 3)
    return out


def curve(history: list[dict], keys: tuple[str, ...]) -> list[dict]:
    return [{k: h[k] for k in ("step", "elapsed_s", *keys) if k in h} for h in history]


def train_row(row: str, a: argparse.Namespace, sets: list[str] | None = None,
              name: str | None = None) -> tuple[Config, Path, dict]:
    """Train (unless --no-train) the row's config into --runs/<name>; returns the config,
    the run folder and the training summary."""
    cfg = load_config(CONFIGS[row], [*a.set, *(sets or [])])
    cfg.run_dir = str(Path(a.runs) / (name or row))
    run = Path(cfg.run_dir)
    t0 = time.time()
    if not a.no_train:
        train(cfg, resume=(run / "last.pt").is_file() and a.resume, overwrite=not a.resume)
    history = read_validations(run)
    last = history[-1] if history else {}
    return cfg, run, {"run": str(run), "wall_minutes_this_call": round((time.time() - t0) / 60, 1),
                      "train_minutes": round(last.get("elapsed_s", 0) / 60, 2),
                      "steps": last.get("step")}


def base_report(row, cfg, run, summary) -> tuple[dict, object]:
    pred = tandem.load(run / "best.pt", device="cpu")
    params = sum(p.numel() for p in pred.model.parameters())
    return {"row": row, "config": cfg.to_dict(), "data": data_signature(cfg),
            "parameters": params, **summary, "best": pred.train_state}, pred


def row_classify(row: str, a) -> dict:
    cfg, run, summary = train_row(row, a)
    body, pred = base_report(row, cfg, run, summary)
    history = read_validations(run)
    body["dev_curve"] = curve(history, ("accuracy", "macro_f1", "loss"))
    body["dev"] = _short(pred.evaluate(split="dev"))
    body["test"] = _short(pred.evaluate(split="test"))
    body["average"] = averaged(run)
    body["speed"] = speed(run, cfg, pred)
    if row == "names":
        import names_tutorial

        body["tutorial"] = names_tutorial.run(cfg, seed=1, iterations=a.tutorial_iterations)
    return body


def averaged(run: Path, last: int = 5) -> dict | None:
    """Dev and test scores of the mean of the run's last `last` checkpoints (None when it
    kept fewer than two)."""
    from tandem import checkpoint
    from tandem.train.average import average

    paths = checkpoint.numbered(run)[-last:]
    if len(paths) < 2:
        return None
    pred = tandem.load(average(paths, run / f"avg{len(paths)}.pt"), device="cpu")
    return {"checkpoints": [p.name for p in paths], "dev": _short(pred.evaluate(split="dev")),
            "test": _short(pred.evaluate(split="test"))}


def _short(res: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}


def row_tag(row: str, a) -> dict:
    cfg, run, summary = train_row(row, a)
    body, pred = base_report(row, cfg, run, summary)
    body["dev_curve"] = curve(read_validations(run), ("token_acc", "unseen_acc", "loss"))
    body["dev"] = _short(pred.evaluate(split="dev"))
    body["test"] = _short(pred.evaluate(split="test"))
    body["speed"] = speed(run, cfg, pred)
    return body


def row_lm(row: str, a) -> dict:
    cfg, run, summary = train_row(row, a)
    body, pred = base_report(row, cfg, run, summary)
    history = read_validations(run)
    body["dev_curve"] = curve(history, ("loss", "ppl", "bpc"))
    at3 = [h for h in history if h["elapsed_s"] <= 180]
    body["best_val_within_3_minutes"] = min((h["loss"] for h in at3), default=None)
    body["val"] = _short(pred.evaluate(split="dev"))
    body["speed"] = speed(run, cfg, pred)
    body["samples"] = [{"prompt": p, "temperature": 0.8, "seed": 1, "text": t} for p, t in zip(
        SAMPLE_PROMPTS, pred.generate(SAMPLE_PROMPTS, max_len=300, seed=1, temperature=0.8),
        strict=True)]
    return body


def row_generate(row: str, a) -> dict:
    cfg, run, summary = train_row(row, a)
    body, pred = base_report(row, cfg, run, summary)
    body["dev_curve"] = curve(read_validations(run), ("loss", "ppl"))
    body["test"] = _short(pred.evaluate(split="test"))
    # the same model without the language: every name labelled "any", the same hash split
    items = read_label_folder(corpus_dir(cfg.data))[0]
    flat = Path(a.runs) / "names_unconditioned_data"
    flat.mkdir(parents=True, exist_ok=True)
    (flat / "any.txt").write_text("".join(text + "\n" for text, _, _ in items),
                                  encoding="utf-8")
    ucfg, urun, usummary = train_row(row, a, [f"data.corpus_dir={flat}"],
                                     "names_unconditioned")
    upred = tandem.load(urun / "best.pt", device="cpu")
    # its test split holds the same names: hash_split assigns by the name's text
    body["unconditioned"] = {**usummary, "test": _short(upred.evaluate(split="test"))}
    body["speed"] = speed(run, cfg, pred)
    clf_path = Path(a.runs) / "names" / "best.pt"
    if clf_path.is_file():
        clf = tandem.load(clf_path, device="cpu")
        per_label = {}
        for lab in pred.labels:
            names = pred.generate([lab], n=100, max_len=30, seed=1, temperature=0.8)
            names = [x for x in names if x.strip()]
            got = clf.predict(names) if names else []
            per_label[lab] = {"generated": len(names),
                              "classified_as_requested": sum(t[0][0] == lab for t in got),
                              "examples": names[:5]}
        total = sum(v["generated"] for v in per_label.values())
        right = sum(v["classified_as_requested"] for v in per_label.values())
        real = {t for t, _, _ in items}
        gen_all = [x for v in per_label.values() for x in v["examples"]]
        body["classified_as_requested"] = {
            "share": round(right / max(total, 1), 4), "names": total,
            "chance": round(1 / len(pred.labels), 4), "classifier": str(clf_path),
            "classifier_test_accuracy": clf.evaluate(split="test")["accuracy"],
            "temperature": 0.8, "seed": 1, "per_label": per_label,
            "examples_that_are_real_names": sum(x in real for x in gen_all),
            "examples": len(gen_all)}
    return body


def row_ensemble(row: str, a) -> dict:
    """sst2_ensemble: the sst2 recipe with seeds 1..--seeds (seed 1 = the sst2 row's run,
    reused when it is there), each averaged over its last 5 checkpoints, and the ensemble
    that averages their label probabilities; every member scored alone too."""
    from tandem.metrics import classification_scores
    from tandem.structures.common import labelled_splits

    members, body = [], {"row": row, "members": []}
    for seed in range(1, a.seeds + 1):
        name = "sst2" if seed == 1 else f"sst2_seed{seed}"
        have = (Path(a.runs) / name / "best.pt").is_file()
        b = argparse.Namespace(**{**vars(a), "no_train": a.no_train or have})
        cfg, run, summary = train_row("sst2", b, [f"train.seed={seed}"], name)
        avg = averaged(run)
        path = run / f"avg{len(avg['checkpoints'])}.pt" if avg else run / "best.pt"
        members.append(tandem.load(path, device="cpu"))
        body["members"].append({"seed": seed, **summary, "single_test": _short(
            tandem.load(run / "best.pt", device="cpu").evaluate(split="test"))["accuracy"],
            "averaged_test": avg["test"]["accuracy"] if avg else None})
    body["config"] = cfg.to_dict()
    body["data"] = data_signature(cfg)
    body["train_minutes_all_members"] = round(sum(m["train_minutes"] for m in body["members"]),
                                              2)
    for split in ("dev", "test"):
        items = labelled_splits(cfg.data, label_first=False)[("dev", "test").index(split) + 1]
        texts = [t for t, _, _ in items]
        gold = [members[0].fields.label_ids[lab] for _, lab, _ in items]
        probs = sum(m.probabilities(texts) for m in members) / len(members)
        scores = classification_scores(gold, probs.argmax(-1).tolist(), len(members[0].labels))
        body[f"ensemble_{split}"] = {"items": len(texts), "accuracy": round(scores["accuracy"], 4),
                                     "macro_f1": round(scores["macro_f1"], 4)}
    return body


ROWS = {"sst2": row_classify, "sst2_ensemble": row_ensemble, "names": row_classify,
        "ud_ewt": row_tag, "shakespeare_3min": row_lm, "shakespeare": row_lm,
        "names_generate": row_generate}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rows", nargs="+", choices=sorted(ROWS))
    p.add_argument("--set", action="append", default=[], help="config override for every row")
    p.add_argument("--no-train", action="store_true", help="score the existing runs")
    p.add_argument("--resume", action="store_true", help="continue runs that stopped")
    p.add_argument("--runs", default="runs/structures")
    p.add_argument("--results", default="benchmarks/results")
    p.add_argument("--seeds", type=int, default=5, help="sst2_ensemble: members")
    p.add_argument("--tutorial-iterations", type=int, default=100_000,
                   help="names: the tutorial model's training examples (its own 100,000)")
    p.add_argument("--note", default="", help="recorded in the result (e.g. how a run that "
                   "--no-train scores was trained)")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for row in a.rows:
        t0 = time.time()
        body = ROWS[row](row, a)
        body["benchmark_wall_minutes"] = round((time.time() - t0) / 60, 1)
        if a.note:
            body["note"] = a.note
        out = write_report(a.results, "structures", f"-{row}", body)
        print(f"{row}: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
