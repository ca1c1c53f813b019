"""How should a G2P model decode? Beam sizes and precisions side by side on held-out words:
accuracy (WER/PER, word by word against the first setting) and speed, in one run.

    .venv/bin/python benchmarks/speed/g2p_decoding.py [--model PATH] [--words heldout|dev|test] \
        [--setting fp32:5 --setting fp32:1 --setting int8:1 ...] [--rounds 3] [--name NAME]

--words heldout (the default) is the 3,000 words the release recipe holds out of the whole
dictionary by hash (for the shipped model, trained on the rest); dev and test are the standard
split's, for a checkpoint trained on the split (its config names the data). A setting is
PRECISION:BEAM with PRECISION fp32, int8 or bf16 (the PyTorch path; bf16 is skipped, and the
report says so, on a CPU without native bfloat16 instructions), or onnx / onnx-int8 (the model
exported, float32 or int8, run by the lean runtime). Each setting also counts the words whose
output equals the first setting's. Every setting decodes every word once for accuracy;
speed is the median words/s of --rounds timed passes per setting, the order of the settings
rotating from round to round after one warm-up pass each. Accuracy is paired: for each setting,
how many words it gets right that the first setting gets wrong, and the reverse. Scores are
tandem.pronounce.pronunciation_scores' `stress`/`no_stress` (the 2026-12-06 result files call
the first `as_written`). Writes benchmarks/results/g2p-decoding-<date>-<name>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: common.py
from common import rotated, write_report

from tandem.cpu import native_bf16
from tandem.data.cmudict import hold_out_by_word, package_dictionary
from tandem.data.dataset import load_splits
from tandem.evaluate import group_references
from tandem.pronounce import pronunciation_scores
from tandem.structures.translator import Translator, load

PRECISIONS = ("fp32", "int8", "bf16", "onnx", "onnx-int8")
"""fp32 / int8 / bf16: the PyTorch path (int8: its dynamic quantization); onnx / onnx-int8:
the model exported (`tandem.export`, float32 or --quantize int8) and run by the lean runtime
(`tandem.runtime`, numpy + onnxruntime)."""


def word_set(tr: Translator, which: str, heldout_words: int) -> tuple[list[str], list[list[str]]]:
    """The words to decode and every reference pronunciation of each."""
    if which == "heldout":
        _, pairs = hold_out_by_word(package_dictionary(stress=True), heldout_words)
    else:
        pairs = getattr(load_splits(tr.config.data), which)
    return group_references(pairs)


def right_words(hyps: list[str], refs: list[list[str]]) -> list[bool]:
    """Whether each word's pronunciation matches one of its references."""
    return [h.split() in [r.split() for r in rs] for h, rs in zip(hyps, refs, strict=True)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="models/g2p_en.pt",
                   help="a G2P checkpoint (default: the shipped model's release checkpoint)")
    p.add_argument("--words", choices=("heldout", "dev", "test"), default="heldout")
    p.add_argument("--heldout-words", type=int, default=3000,
                   help="how many words the release recipe held out (its corpus_dev_words)")
    p.add_argument("--setting", action="append", default=None,
                   help="PRECISION:BEAM (repeatable; the first is the one others are paired "
                        "with; default fp32:5 fp32:1 int8:5 int8:1 bf16:5 bf16:1)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default="shipped")
    p.add_argument("--results", default="benchmarks/results")
    a = p.parse_args()
    if a.rounds < 1:
        p.error("--rounds: at least 1")
    torch.set_num_threads(a.threads)
    settings = a.setting or ["fp32:5", "fp32:1", "int8:5", "int8:1", "bf16:5", "bf16:1"]
    skipped = []
    by_precision: dict[str, Translator] = {}  # settings of one precision share a model
    runs: dict[str, tuple[Translator, int, bool]] = {}
    for s in settings:
        precision, _, beam = s.partition(":")
        if precision not in PRECISIONS or not beam.isdigit() or int(beam) < 1:
            p.error(f"--setting {s!r}: expected PRECISION:BEAM with PRECISION one of "
                    f"{', '.join(PRECISIONS)} and BEAM a whole number >= 1")
        if precision == "bf16" and not native_bf16():
            skipped.append(s)
            continue
        if precision not in by_precision and precision.startswith("onnx"):
            import tempfile

            import tandem.runtime
            from tandem.export import export

            folder = Path(tempfile.mkdtemp()) / precision
            export(a.model, folder, "int8" if precision == "onnx-int8" else None)
            by_precision[precision] = tandem.runtime.load(folder, threads=a.threads)
        if precision not in by_precision:
            tr = by_precision[precision] = load(a.model, device="cpu")
            if precision == "int8":
                tr.quantize("int8")
        runs[s] = (by_precision[precision], int(beam), precision == "bf16")
    if not runs:
        p.error(f"every setting was skipped ({', '.join(skipped)}): this CPU has no native "
                "bf16; give an fp32 or int8 setting")
    first = next(iter(runs.values()))[0]
    words, refs = word_set(first, a.words, a.heldout_words)

    def decode(name: str, items: list[str]) -> list[str]:
        tr, beam, bf16 = runs[name]
        opts = dataclasses.replace(tr.config.decode, beam=beam, nbest=1, bf16=bf16,
                                   batch_size=a.batch_size, sample=False)
        return tr.translate(items, opts=opts)

    rows, right, outputs = {}, {}, {}
    for name in runs:
        hyps = outputs[name] = decode(name, words)
        rows[name], right[name] = pronunciation_scores(hyps, refs), right_words(hyps, refs)
    base = next(iter(runs))
    for name in runs:
        pairs = list(zip(right[name], right[base], strict=True))
        rows[name]["right_only_here"] = sum(r and not b for r, b in pairs)
        rows[name]["same_output_as_" + base] = sum(
            x == y for x, y in zip(outputs[name], outputs[base], strict=True))
        rows[name][f"right_only_in_{base}"] = sum(b and not r for r, b in pairs)
    rates: dict[str, list[float]] = {n: [] for n in runs}
    names = list(runs)
    for name in names:
        decode(name, words[:256])
    for r in range(a.rounds):
        for name in rotated(names, r):
            t0 = time.perf_counter()
            decode(name, words)
            rates[name].append(len(words) / (time.perf_counter() - t0))
    for name, v in rates.items():
        rows[name]["words_per_s_median"] = round(statistics.median(v), 1)
        rows[name]["words_per_s_all"] = [round(x, 1) for x in v]
    body = {"model": a.model, "words": a.words, "n_words": len(words),
            "batch_size": a.batch_size, "threads": a.threads, "rounds": a.rounds,
            "native_bf16": native_bf16(), "skipped": skipped, "paired_with": base,
            "settings": rows}
    out = write_report(a.results, "g2p-decoding", f"-{a.name}", body)
    print(f"{len(words)} {a.words} words, paired with {base}")
    for n, m in rows.items():
        print(f"{n:<8} WER {m['stress']['wer']:>6.2f} PER {m['stress']['per']:>5.2f}  "
              f"(no stress {m['no_stress']['wer']:>6.2f})  +{m['right_only_here']}"
              f"/-{m[f'right_only_in_{base}']}  {m['words_per_s_median']:>8} words/s "
              f"{m['words_per_s_all']}")
    if skipped:
        print(f"skipped (no native bf16 on this CPU): {', '.join(skipped)}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
