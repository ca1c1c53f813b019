"""How the commands print their results: outputs (n-best lists, scores), labels, tags,
generated text, pronunciations, evaluation scores, and --json's objects (one per line, UTF-8
as it is, not escaped)."""

from __future__ import annotations

import json
from typing import Any, TextIO


def write_json_line(out: TextIO, obj: Any) -> None:
    """One JSON object on a line of its own (--json of predict and g2p)."""
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")


# --- translate ------------------------------------------------------------------------------


def write_translations(out: TextIO, index: int, results: list, nbest: int,
                       scores: bool) -> None:
    """Input `index`'s outputs (`results`, best first): INDEX<TAB>TEXT<TAB>SCORE lines for an
    n-best list (nbest > 1), TEXT<TAB>SCORE with `scores`, else the text alone."""
    for r in results:
        if nbest > 1:
            out.write(f"{index}\t{r.text}\t{r.score:.4f}\n")
        elif scores:
            out.write(f"{r.text}\t{r.score:.4f}\n")
        else:
            out.write(r.text + "\n")


def attention_row(index: int, r) -> dict:
    """One output's entry in translate --attention's JSON list."""
    return {"index": index, "input": r.source, "output": r.text, "src_tokens": r.src_tokens,
            "unknown": r.unknown, "tgt_tokens": r.tokens + ["</s>"], "attention": r.attention}


# --- evaluate -------------------------------------------------------------------------------


def print_translation_scores(res: dict, as_json: bool, model: list[str], data: str,
                             sentences: int, references: int, beam: int) -> None:
    """A seq2seq evaluation's metrics: one JSON object (with the model, data, number of
    inputs and beam), or a header line and one aligned line per metric."""
    if as_json:
        print(json.dumps({"model": model, "data": data, "sentences": sentences, "beam": beam,
                          **res}))
        return
    print(f"{data}: {sentences} inputs ({references} references)")
    for k, v in res.items():
        print(f"  {k:<17}{v:8.2f}")


def print_scores(res: dict, as_json: bool, extra: dict) -> None:
    """An evaluation's numbers: one JSON object, or aligned lines (and a confusion matrix)."""
    if as_json:
        print(json.dumps({**extra, **res}))
        return
    print(f"{res.pop('data')}:")
    confusion, labels = res.pop("confusion", None), res.pop("labels", None)
    per_label = res.pop("f1", None)
    for k, v in res.items():
        print(f"  {k:<17}{v:10.4f}" if isinstance(v, float) else f"  {k:<17}{v:>10}")
    if confusion is not None and labels is not None:
        width = max(6, *(len(lab) for lab in labels))
        print("  confusion matrix (rows: gold, columns: predicted), F1 per label:")
        print("  " + " " * width + "".join(f"{i:>6}" for i in range(len(labels))) + "     F1")
        for i, (lab, row) in enumerate(zip(labels, confusion, strict=True)):
            f1 = per_label[i] if per_label else None
            print(f"  {lab:<{width}}" + "".join(f"{c:>6}" for c in row)
                  + (f"  {f1:5.1f}" if f1 is not None else "      -") + f"   ({i})")


# --- predict, generate ----------------------------------------------------------------------


def write_prediction(out: TextIO, record: dict, as_json: bool, tags_only: bool) -> None:
    """One predicted line (a record of `LoadedModel.predict_lines`): its labels (a record with
    `labels`), its words' tags (one with `tags`), or a series' tags per frame (one with
    `segments`: its runs of one tag, FIRST-END:TAG)."""
    if "labels" in record:
        write_labels(out, record["input"], [(x["label"], x["prob"]) for x in record["labels"]],
                     as_json)
    elif "segments" in record:  # a series of frames, a tag per frame
        if as_json:
            write_json_line(out, record)
        elif tags_only:
            out.write(" ".join(record["tags"]) + "\n")
        else:  # its segments: FIRST-END:TAG, frames counted from 0, END exclusive
            out.write(" ".join(f"{a}-{b}:{t}" for a, b, t in record["segments"]) + "\n")
    else:
        write_tags(out, record["input"], list(zip(record["words"], record["tags"], strict=True)),
                   as_json, tags_only)


def write_labels(out: TextIO, text: str, top: list[tuple[str, float]], as_json: bool) -> None:
    """A classified line: LABEL<TAB>PROB for each of its `top` labels on one line, or a JSON
    object of the text and its labels."""
    if as_json:
        write_json_line(out, {"text": text, "labels": [{"label": lab, "prob": p}
                                                       for lab, p in top]})
    else:
        out.write("\t".join(f"{lab}\t{p:.4f}" for lab, p in top) + "\n")


def write_tags(out: TextIO, text: str, pairs: list[tuple[str, str]], as_json: bool,
               tags_only: bool) -> None:
    """A tagged line: WORD/TAG for each word, the tags alone (`tags_only`), or a JSON object
    of the text, its words and their tags."""
    if as_json:
        write_json_line(out, {"text": text, "words": [w for w, _ in pairs],
                              "tags": [t for _, t in pairs]})
    elif tags_only:
        out.write(" ".join(t for _, t in pairs) + "\n")
    else:
        out.write(" ".join(f"{w}/{t}" for w, t in pairs) + "\n")


def print_continuations(prompts: list[str], texts: list[str], n: int) -> None:
    """A language model's `texts` (`n` per prompt, in order): each prompt followed by its
    continuation, outputs apart by a line of dashes."""
    starts = [p for p in prompts for _ in range(n)]
    for i, (p, t) in enumerate(zip(starts, texts, strict=True)):
        if i:
            print("\n" + "-" * 40)
        print(p + t, flush=True)


def print_generated(conditions: list[str], texts: list[str]) -> None:
    """A conditional generator's outputs: CONDITION<TAB>TEXT, one per line."""
    for c, t in zip(conditions, texts, strict=True):
        print(f"{c}\t{t}", flush=True)


# --- g2p ------------------------------------------------------------------------------------


def write_pronunciations(out: TextIO, word: str, prons: list, as_json: bool) -> None:
    """A word's pronunciations: WORD<TAB>PHONEMES per pronunciation, or a JSON object of the
    word and its pronunciations with their sources."""
    if as_json:
        write_json_line(out, {"word": word, "pronunciations": [
            {"phonemes": p.phonemes, "source": p.source} for p in prons]})
    else:
        for p in prons:
            out.write(f"{word}\t{p.phonemes}\n")
