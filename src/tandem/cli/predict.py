"""`tandem predict` and `generate`: the models of the other structures at work (a classifier's
labels, a tagger's tags; a language model's or conditional generator's text)."""

from __future__ import annotations

import argparse
import sys

import tandem.cli.output as output
from tandem.cli.args import decode_args, decode_overrides, device_arg, positive
from tandem.cli.inputs import check_input, iter_inputs
from tandem.cli.models import load_model, need
from tandem.errors import DataError


def cmd_predict(a: argparse.Namespace) -> int:
    """`tandem predict`: a label (with its probability, or the --topk best) for each line
    read, or the tag of every word of each line."""
    check_input(a.input)
    model = load_model(a)
    need(model, "predict", "predict")
    if model.reads_frames:  # series of frames: a file, read whole
        if a.input is None:
            raise DataError(f"tandem predict: {a.model[0]} reads series of frames; give "
                            "--input FILE (.ts, .npz or .npy)")
        records = model.predict_file(a.input, a.topk)
        out = open(a.output, "w", encoding="utf-8") if a.output else sys.stdout
        try:
            for record in records:
                output.write_prediction(out, record, a.json, a.tags_only)
        finally:
            if a.output:
                out.close()
        return 0
    out = open(a.output, "w", encoding="utf-8") if a.output else sys.stdout
    try:
        buf: list[str] = []

        def flush() -> None:
            if not buf:
                return
            for record in model.predict_lines(buf, a.topk):
                output.write_prediction(out, record, a.json, a.tags_only)
            out.flush()
            buf.clear()

        where = a.input or "<stdin>"
        for n, line in enumerate(iter_inputs(a.input), 1):
            if not line.strip():
                raise DataError(f"{where}:{n}: empty line; each line must hold one "
                                f"{model.item}")
            # a line of only characters the tokenizer drops (sentencepiece drops zero-width
            # and control characters) has nothing to classify: named here by its line, where
            # the model could only count within the chunk
            why = model.check_line(line)
            if why is not None:
                raise DataError(f"{where}:{n}: {why}; each line must hold one {model.item}")
            buf.append(line)
            if len(buf) >= a.chunk:
                flush()
        flush()
    finally:
        if a.output:
            out.close()
    return 0


def cmd_generate(a: argparse.Namespace) -> int:
    """`tandem generate`: text written by a language model (after --prompt) or by a
    conditional generator (from --label, or the rows of --features)."""
    model = load_model(a)
    need(model, "generate", "generate")
    options = {k: v for k, v in decode_overrides(a).items() if v is not None}
    items, shown = model.cli_inputs(a.prompt, a.label, a.features)
    texts = model.generate_from(items, a.n, a.max_len, a.seed, **options)
    if model.continues:
        output.print_continuations(shown, texts, a.n)
    else:
        output.print_generated([c for c in shown for _ in range(a.n)], texts)
    return 0


# --- the parsers ----------------------------------------------------------------------------

GENERATE_SKIPS = ("nbest", "max_len_a", "max_len_b", "coverage_penalty", "batch_size", "bf16",
                  "on_long_input")
"""The decoding options `tandem generate` has no flag for, as its search would not use them:
one output per search (--n asks for several), the length limit is --max-len, a language model
or generator has no attention to cover, and every prompt, label or row is searched in one
batch, in float32, with no input length limit."""

GENERATE_TITLE = ("decoding (defaults: the model's decode section, but a beam of 1, and "
                  "sampling unless --no-sample or a --beam over 1 is given)")
"""The title of generate's decoding flags in its --help."""


def _predict_parser(sub) -> None:
    pd = sub.add_parser("predict", help="a classifier's label, or a tagger's tags, for each "
                        "line from stdin or a file")
    pd.add_argument("--model", required=True, nargs=1, help="a classify or tag checkpoint")
    pd.add_argument("--input", help="input file (default stdin); TSV: first column")
    pd.add_argument("--output", help="output file (default stdout)")
    pd.add_argument("--topk", type=positive, default=1,
                    help="classify: print the K most likely labels, LABEL<TAB>PROB each")
    pd.add_argument("--tags-only", action="store_true",
                    help="tag: print the tags alone (space separated, one per word)")
    pd.add_argument("--json", action="store_true", help="one JSON object per line")
    pd.add_argument("--chunk", type=positive, default=1000, help="lines read per batch")
    device_arg(pd)
    pd.set_defaults(func=cmd_predict)


def _generate_parser(sub) -> None:
    g = sub.add_parser("generate", help="text from a language model (--prompt) or a "
                       "conditional generator (--label / --features)")
    g.add_argument("--model", required=True, nargs=1, help="an lm or generate checkpoint")
    g.add_argument("--prompt", action="append", metavar="TEXT",
                   help="lm: the text to continue (repeat for several; default: a line break)")
    g.add_argument("--label", action="append", metavar="L",
                   help="generate: the label to write from (repeat for several; default: every "
                   "label)")
    g.add_argument("--features", metavar="NPY",
                   help="generate: a .npy matrix, one output per row (models conditioned on "
                   "feature vectors)")
    g.add_argument("--n", type=positive, default=1, help="outputs per prompt, label or row")
    g.add_argument("--max-len", type=positive, help="tokens to write at most (default 200)")
    g.add_argument("--seed", type=int, help="seed of the sampling (repeatable outputs)")
    decode_args(g, skip=GENERATE_SKIPS, models=False, aliases=("--forbid-unk", "--greedy"),
                title=GENERATE_TITLE)
    g.set_defaults(func=cmd_generate)


PARSERS = {"predict": _predict_parser, "generate": _generate_parser}
"""{command: the function that adds its parser to the subparsers}."""
