"""`tandem translate`, `evaluate`, `distill` and `chat`: a seq2seq model's searches over lines
of text (evaluate also scores a classifier, tagger, language model or generator)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import tandem.cli.output as output
from tandem.cli.args import decode_args, decode_overrides
from tandem.cli.inputs import check_input, iter_inputs
from tandem.cli.models import load_model, no_decode_flags, sampling_generator, translator
from tandem.errors import ConfigError, DataError

log = logging.getLogger("tandem")


def cmd_translate(a: argparse.Namespace) -> int:
    """`tandem translate`: lines in (stdin or --input), outputs out, decoded with the flags'
    options over the model's."""
    check_input(a.input)
    tr = translator(a)
    opts = tr.options(**decode_overrides(a))
    gen = sampling_generator(tr, a.seed)
    out = open(a.output, "w", encoding="utf-8") if a.output else sys.stdout  # noqa: SIM115
    rows = []
    show = a.progress if a.progress is not None else (a.input is not None and
                                                       sys.stderr.isatty())
    total = None
    if tr.reads_frames:  # series of frames: a file, read whole
        if a.input is None:
            raise DataError(f"tandem translate: {a.model[0]} reads series of frames; give "
                            "--input FILE (.ts, .npz or .npy)")
        from tandem.data.frames import read_series

        inputs = [x for x, _, _ in read_series(a.input, labelled=False)]
        total = len(inputs)
    else:
        inputs = iter_inputs(a.input)
        if show and a.input:
            with open(a.input, "rb") as f:
                total = sum(1 for _ in f)
    from tqdm import tqdm

    bar = tqdm(total=total, unit="line", disable=not show, file=sys.stderr)
    started, out_tokens, lines = time.perf_counter(), 0, 0
    for i, nb in enumerate(tr.stream(inputs, a.chunk, opts=opts,
                                     attention=bool(a.attention), generator=gen)):
        bar.update(1)
        lines += 1
        out_tokens += len(nb[0].tokens) if nb else 0
        if a.report_unknown and nb and nb[0].unknown:
            log.warning("input %d: never seen in training, read as <unk>: %s", i + 1,
                        " ".join(repr(t) for t in dict.fromkeys(nb[0].unknown)))
        output.write_translations(out, i, nb, opts.nbest, a.scores)
        if a.attention:
            rows += [output.attention_row(i, r) for r in nb]
        out.flush()
    bar.close()
    if a.output:
        out.close()
    seconds = time.perf_counter() - started
    if show or a.output:
        log.info("translated %d lines in %.1f s: %.1f lines/s, %.0f output tokens/s", lines,
                 seconds, lines / max(seconds, 1e-9), out_tokens / max(seconds, 1e-9))
    if a.attention:
        Path(a.attention).write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    """`tandem evaluate`: decode a test set and score it against its references, or for a
    classifier, tagger, language model or generator, score it with the structure's
    metrics."""
    model = load_model(a)
    if a.features is not None:  # never silently scored without the matrix asked for
        if not model.reads_features:
            raise ConfigError(f"--features: {a.model[0]} is a {model.structure} model; "
                              "--features is for a generator conditioned on feature vectors")
        if a.data is None:
            raise ConfigError(f"--features {a.features}: give --data too, the text file whose "
                              "line i row i of the matrix conditions (without --data the "
                              f"{a.split} split of the model's config is scored)")
    if "translate" not in model.verbs:
        no_decode_flags(a, model)
        res = model.evaluate(a.data, a.features, a.split)
        output.print_scores(res, a.json, {"model": a.model[0], "structure": model.structure})
        return 0
    opts = model.options(**{**decode_overrides(a), "nbest": 1})  # the best output is scored
    res = model.evaluate(a.data, split=a.split, src_suffix=a.src_suffix,
                         tgt_suffix=a.tgt_suffix, metrics=a.metrics, opts=opts)
    data, sentences, references, beam = (res.pop(k) for k in ("data", "sentences",
                                                               "references", "beam"))
    output.print_translation_scores(res, a.json, a.model, data, sentences, references, beam)
    return 0


def cmd_distill(a: argparse.Namespace) -> int:
    """`tandem distill --teacher A.pt [B.pt ...] [--rescore R.pt] --data F --out F`: the
    teacher's output for every source line of F (sequence-level knowledge distillation)."""
    from tandem.data.corpora import read_sources

    sources = read_sources(a.data)
    if any(not s.strip() for s in sources):
        bad = next(i for i, s in enumerate(sources, 1) if not s.strip())
        raise DataError(f"{a.data}:{bad}: empty source; every line needs one to distil")
    a.model = a.teacher
    tr = translator(a)
    opts = tr.options(**{**decode_overrides(a), "nbest": 1, "sample": False})
    unique = list(dict.fromkeys(sources))
    started = time.perf_counter()
    outputs = dict(zip(unique, tr.translate(unique, opts=opts), strict=True))
    tmp = Path(a.out).with_name(f".{Path(a.out).name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for src in sources:
            f.write(f"{src}\t{outputs[src]}\n")
    tmp.replace(a.out)
    log.info("distilled %d lines (%d distinct sources) with %d teacher model(s)%s in %.1f s "
             "-> %s", len(sources), len(unique), len(a.teacher),
             f" reranked by {len(a.rescore)}" if a.rescore else "",
             time.perf_counter() - started, a.out)
    return 0


def cmd_chat(a: argparse.Namespace) -> int:
    """`tandem chat`: a reply (the best output) per line read, until EOF or /quit."""
    tr = translator(a)
    opts = tr.options(**{**decode_overrides(a), "nbest": 1})  # a reply is the best output
    tty = sys.stdin.isatty()
    if tty:
        print("tandem chat: type a message; /quit or Ctrl-D to leave", file=sys.stderr)
    gen = sampling_generator(tr, a.seed)
    while True:
        if tty:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        line = line.strip()
        if line in ("/quit", "/exit"):
            break
        if not line:
            continue
        reply = tr.translate_full([line], opts=opts, generator=gen)[0][0].text
        print(reply, flush=True)
    return 0


# --- the parsers ----------------------------------------------------------------------------


def _translate_parser(sub) -> None:
    tr = sub.add_parser("translate", help="translate lines from stdin or a file")
    tr.add_argument("--model", required=True, nargs="+",
                    help="checkpoint (best.pt); several = an ensemble")
    tr.add_argument("--input", help="input file (default stdin); TSV: first column")
    tr.add_argument("--output", help="output file (default stdout)")
    tr.add_argument("--scores", action="store_true", help="write TEXT<TAB>SCORE")
    tr.add_argument("--attention", metavar="FILE", help="write attention weights as JSON")
    tr.add_argument("--report-unknown", action="store_true",
                    help="warn on stderr about input tokens the model never saw in training")
    tr.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="progress bar on stderr (default: when --input is given on a terminal)")
    tr.add_argument("--chunk", type=int, default=1000,
                    help="lines read and decoded per chunk (sorted by length within it)")
    tr.add_argument("--seed", type=int, help="seed for --sample (repeatable outputs)")
    decode_args(tr)
    tr.set_defaults(func=cmd_translate)


def _evaluate_parser(sub) -> None:
    e = sub.add_parser("evaluate", help="score a model on a test set (seq2seq: a TSV or paired "
                       "files; other structures: a file in their format, or their test split)")
    e.add_argument("--model", required=True, nargs="+", help="checkpoint(s); several = ensemble")
    e.add_argument("--features", metavar="NPY", help="generate: the .npy matrix of --data's "
                   "lines")
    e.add_argument("--split", choices=["train", "dev", "test"], default="test",
                   help="without --data: the split of the model's config to score (its task, "
                   "corpus or files; default test)")
    e.add_argument("--data",
                   help="seq2seq: a TSV (source<TAB>ref[<TAB>ref...]; a source on several "
                        "lines has several references), or a prefix with --src/--tgt-suffix; "
                        "classify: text<TAB>label; tag: CoNLL-U or word<TAB>tag; lm: plain "
                        "text; generate: label<TAB>text (or text lines with --features); "
                        "default: --split of the model's config")
    e.add_argument("--src-suffix")
    e.add_argument("--tgt-suffix")
    e.add_argument("--metrics", nargs="+", help="subset of metrics (default all)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    decode_args(e, skip=("nbest",))  # the best output is scored: one per input
    e.set_defaults(func=cmd_evaluate)


def _distill_parser(sub) -> None:
    ds = sub.add_parser("distill", help="write a teacher's outputs for a training file "
                        "(sequence-level knowledge distillation)")
    ds.add_argument("--teacher", nargs="+", required=True, metavar="MODEL",
                    help="the teacher: one model or an ensemble")
    ds.add_argument("--data", required=True,
                    help="the sources to decode (TSV: the first column; else every line)")
    ds.add_argument("--out", required=True,
                    help="source<TAB>teacher output, one line per input line")
    decode_args(ds, models=True, skip=("nbest", "sample", "temperature", "top_k"))
    ds.set_defaults(func=cmd_distill)


def _chat_parser(sub) -> None:
    ch = sub.add_parser("chat", help="talk to a dialogue model (reads lines until EOF or /quit)")
    ch.add_argument("--model", required=True, nargs="+")
    ch.add_argument("--seed", type=int, help="seed for --sample (repeatable replies)")
    decode_args(ch, defaults={"temperature": 0.8, "top_k": 20}, skip=("nbest",), models=False)
    ch.set_defaults(func=cmd_chat)


PARSERS = {"translate": _translate_parser, "evaluate": _evaluate_parser,
           "distill": _distill_parser, "chat": _chat_parser}
"""{command: the function that adds its parser to the subparsers}."""
