"""Homographs in context on the Wikipedia Homograph Data (../shared/data/homographs): the tandem
classifier of configs/homographs.yaml against the baselines, all scored on the data's eval
split in one run:

    .venv/bin/python benchmarks/recipes/homographs.py [--tagger RUN/best.pt] [--ship DIR]

- data: train minus a dev set (10% of each wordid's sentences, seeded; a wordid seen once stays
  in train), eval scored once. Each line is `tandem.pronounce.homographs.example_input`: a window
  of the sentence with the homograph as one marker token; written to --work/data;
- tandem: the classifier's most probable wordid among the homograph's own (`choose`);
- majority: each homograph's most frequent wordid in train;
- dictionary: the CMU dictionary's first variant (what `tandem g2p` did before --text), right
  when it is the pronunciation the gold wordid maps to;
- pos_rule (with --tagger, a part-of-speech tagger trained by configs/ud_ewt_upos.yaml, here on
  the xpos column): the tag of the homograph in its sentence mapped to a wordid by `POS_TABLE`,
  the majority wordid where the table gives none.

`--ship DIR` exports the model (int8 when --quantize int8) with its wordid table (`wordids.tsv`)
and the data's licence into DIR (the package's models/homographs_en). Writes
benchmarks/results/homographs-<date>.json: accuracies, the per-homograph accuracy, the worst
10, the unmapped wordids, training facts and the command.
"""

from __future__ import annotations

import argparse
import collections
import random
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import write_report

import tandem
from tandem.config import load_config
from tandem.data.lexicon import cmudict
from tandem.pronounce.homographs import (
    Example,
    choose_rows,
    example_input,
    map_wordids,
    read_examples,
    read_wordids,
    write_table,
)
from tandem.pronounce.text import fold, tokenize
from tandem.train.scalars import read_validations
from tandem.train.trainer import train

DATA = Path("../shared/data/homographs")

POS_TABLE = {
    "VBD": ("past", "verb"), "VBN": ("past", "verb"), "VB": ("present", "verb"),
    "VBP": ("present", "verb"), "VBZ": ("present", "verb"), "VBG": ("participle", "verb"),
    "NN": ("noun",), "NNS": ("noun",), "NNP": ("name", "noun"), "NNPS": ("name", "noun"),
    "JJ": ("adjective",), "JJR": ("adjective",), "JJS": ("adjective",),
}
"""The part-of-speech rule: a Penn tag -> the words to look for, in order, in the labels of the
homograph's wordids (wordids.tsv: `verb`, `noun`, `adjective-noun`, `past tense verb`, ...); the
first wordid whose label holds one is chosen (a proper noun: a label holding `name`, such as
`given name`, else `noun`); a tag outside the table, or no label found, gives the majority
wordid."""


def split_train(examples: list[Example], seed: int = 0, share: float = 0.1
                ) -> tuple[list[Example], list[Example]]:
    """(train, dev): a `share` of each wordid's sentences held out, drawn with `seed`; a wordid
    with one sentence keeps it in train."""
    rng = random.Random(seed)
    by: dict[str, list[Example]] = collections.defaultdict(list)
    for e in examples:
        by[e.wordid].append(e)
    train, dev = [], []
    for wid in sorted(by):
        xs = by[wid][:]
        rng.shuffle(xs)
        k = round(len(xs) * share) if len(xs) > 1 else 0
        dev += xs[:k]
        train += xs[k:]
    return train, dev


def write_split(path: Path, examples: list[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for e in examples:
            f.write(f"{example_input(e)}\t{e.wordid}\n")


def pos_rule(tag: str, homograph: str, table: dict, majority: dict) -> str:
    """The wordid the POS rule (`POS_TABLE`) gives a homograph with the Penn tag `tag`."""
    own = sorted((w for w in table.values() if w.homograph == homograph),
                 key=lambda w: w.wordid)
    for want in POS_TABLE.get(tag, ()):
        for w in own:
            if want in w.label.lower():
                return w.wordid
    return majority[homograph]


def tag_homographs(tagger_path: str, examples: list[Example]) -> tuple[list[str], dict]:
    """The tagger's tag of each example's homograph (the sentence tokenized as --text does),
    and the tagger's training facts."""
    tagger = tandem.load(tagger_path, device="cpu")
    sents, where = [], []
    for e in examples:
        tokens = tokenize(e.sentence)
        idx = next(i for i, t in enumerate(tokens) if t.start <= e.start < t.end)
        sents.append([t.text for t in tokens])
        where.append(idx)
    out = []
    for start in range(0, len(sents), 256):
        out += tagger.tag(sents[start:start + 256])
    return [tagged[i][1] for tagged, i in zip(out, where, strict=True)], tagger.train_state


def caps_rule() -> dict:
    """How `reads_as_letters` agrees with the dictionary's own readings: every dictionary word
    of 2-6 letters A-Z, counted as spelled out when its first pronunciation is its letters'
    names (stress ignored), else as read as a word; the rule sees it in capitals."""
    from tandem.pronounce import strip_stress
    from tandem.pronounce.sentences import LETTERS, reads_as_letters

    counts = {"spelled": [0, 0], "word": [0, 0]}
    for word, prons in cmudict().items():
        if not (2 <= len(word) <= 6 and word.isascii() and word.isalpha()):
            continue
        spelled = strip_stress(prons[0]) == strip_stress(" ".join(LETTERS[c] for c in word))
        kind = "spelled" if spelled else "word"
        counts[kind][0] += reads_as_letters(word.upper()) == spelled
        counts[kind][1] += 1
    return {k: {"right": r, "total": n, "accuracy": round(100 * r / n, 2)}
            for k, (r, n) in counts.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--work", default="runs/homographs")
    ap.add_argument("--config", default="configs/homographs.yaml")
    ap.add_argument("--set", action="append", default=[], help="config overrides KEY=VALUE")
    ap.add_argument("--no-train", action="store_true", help="score the run already in --work")
    ap.add_argument("--tagger", help="a UD EWT tagger checkpoint (xpos) for the POS rule")
    ap.add_argument("--tagger-command", default="tandem train configs/ud_ewt_upos.yaml --set "
                    "data.tag_column=xpos --set train.max_minutes=10 --set "
                    "run_dir=runs/ud_ewt_xpos", help="how --tagger was trained (recorded)")
    ap.add_argument("--ship", help="export the model and its table into this folder")
    ap.add_argument("--quantize", choices=["int8"], help="--ship an int8 export")
    ap.add_argument("--tag", default="", help="suffix of the result file's name")
    a = ap.parse_args()

    data, work = Path(a.data), Path(a.work)
    train_all = read_examples(data / "train")
    evals = read_examples(data / "eval")
    train_ex, dev_ex = split_train(train_all)
    for name, xs in (("train", train_ex), ("dev", dev_ex), ("eval", evals)):
        write_split(work / "data" / f"{name}.tsv", xs)
    table, unmapped = map_wordids(read_wordids(data / "wordids.tsv"), cmudict().get)

    cfg = load_config(a.config, [f"data.train={work}/data/train.tsv",
                                 f"data.dev={work}/data/dev.tsv", *a.set])
    cfg.run_dir = str(work / "run")
    t0 = time.time()
    if not a.no_train:
        train(cfg, overwrite=True)
    history = read_validations(Path(cfg.run_dir))
    model = tandem.load(Path(cfg.run_dir) / "best.pt", device="cpu")
    t1 = time.perf_counter()
    probs = model.probabilities([example_input(e) for e in evals])
    predict_s = time.perf_counter() - t1
    chosen = [w for w, _ in choose_rows(probs, model.labels, [e.homograph for e in evals],
                                        table)]

    counts = collections.Counter(e.wordid for e in train_all)
    majority = {}
    for e in sorted(train_all, key=lambda e: (-counts[e.wordid], e.wordid)):
        majority.setdefault(e.homograph, e.wordid)
    first = {}
    for e in evals:
        variants = cmudict().get(fold(e.homograph))
        first[e.homograph] = variants[0] if variants else None

    def scored(preds: list[str]) -> dict:
        right = sum(p == e.wordid for p, e in zip(preds, evals, strict=True))
        return {"accuracy": round(100 * right / len(evals), 2), "right": right,
                "total": len(evals)}

    by_h = collections.defaultdict(lambda: [0, 0])
    for p, e in zip(chosen, evals, strict=True):
        by_h[e.homograph][0] += p == e.wordid
        by_h[e.homograph][1] += 1
    per = {h: {"right": r, "total": n, "accuracy": round(100 * r / n, 1)}
           for h, (r, n) in sorted(by_h.items())}
    worst = sorted(per.items(), key=lambda kv: (kv[1]["accuracy"], kv[0]))[:10]
    errors = [{"homograph": e.homograph, "gold": e.wordid, "chosen": p, "sentence": e.sentence}
              for p, e in zip(chosen, evals, strict=True) if p != e.wordid]
    dict_right = sum(first[e.homograph] == table[e.wordid].arpabet for e in evals)
    body = {
        "data": {"train": len(train_ex), "dev": len(dev_ex), "eval": len(evals),
                 "homographs": len({e.homograph for e in evals}), "wordids": len(table)},
        "config": cfg.to_dict(),
        "train_minutes": round(history[-1]["elapsed_s"] / 60, 2) if history else None,
        "wall_minutes_this_call": round((time.time() - t0) / 60, 1),
        "best": model.train_state,
        "eval": {"tandem": scored(chosen),
                 "majority": scored([majority[e.homograph] for e in evals]),
                 "dictionary_first_variant": {
                     "accuracy": round(100 * dict_right / len(evals), 2), "right": dict_right,
                     "total": len(evals)}},
        "eval_predict_seconds": round(predict_s, 2),
        "unseen_in_train": sorted({e.wordid for e in evals} - set(counts)),
        "per_homograph": per, "worst_10": dict(worst), "errors": errors,
        "unmapped_wordids": unmapped,
        "mapped_from_dictionary": sum(w.source == "dictionary" for w in table.values()),
        "all_caps_rule": caps_rule(),
    }
    if a.tagger:
        tags, facts = tag_homographs(a.tagger, evals)
        body["eval"]["pos_rule"] = scored([pos_rule(t, e.homograph, table, majority)
                                           for t, e in zip(tags, evals, strict=True)])
        body["eval"]["pos_rule"].update(tagger=a.tagger, tagger_best=facts,
                                        tagger_command=a.tagger_command)
    if a.ship:
        ship(Path(cfg.run_dir) / "best.pt", Path(a.ship), table, data, a.quantize)
        body["shipped"] = {"folder": a.ship, "quantize": a.quantize,
                           "bytes": sum(p.stat().st_size for p in Path(a.ship).iterdir())}
    print({k: v for k, v in body["eval"].items()})
    suffix = f"-{a.tag}" if a.tag else ""
    print(write_report(Path(__file__).resolve().parents[1] / "results", "homographs", suffix,
                       body))
    return 0


def ship(checkpoint: Path, folder: Path, table: dict, data: Path, quantize: str | None) -> None:
    """Export the model into `folder` with its wordid table and the data's licence."""
    from tandem.export import export

    export(checkpoint, folder, quantize=quantize, overwrite=True)
    write_table(folder / "wordids.tsv", table)
    shutil.copy(data / "LICENSE", folder / "LICENSE.homographs")


if __name__ == "__main__":
    raise SystemExit(main())
