"""`tandem plot-attention` and `plot-run`: pictures of a model's attention and of a run's
curves."""

from __future__ import annotations

import argparse

from tandem.cli.args import device_arg
from tandem.cli.models import translator
from tandem.errors import DataError


def cmd_plot_attention(a: argparse.Namespace) -> int:
    """`tandem plot-attention`: the attention of one decode as a heatmap image."""
    from tandem.plots import plot_attention

    tr = translator(a)
    r = tr.translate_full([a.input], attention=True, beam=a.beam)[0][0]
    if not r.tokens or r.attention is None:
        raise DataError(f"--input {a.input!r}: the model produced no output (an input empty "
                        "after tokenization has none); nothing to draw")
    plot_attention(r.src_tokens, r.tokens, r.token_attention, a.out)
    print(f"{r.text}\nwrote {a.out}")
    return 0


def cmd_plot_run(a: argparse.Namespace) -> int:
    """`tandem plot-run RUN --out PNG`: the run's loss and dev-metric curves."""
    from tandem.plots import plot_run

    plot_run(a.run, a.out)
    print(f"wrote {a.out}")
    return 0


def _plot_attention_parser(sub) -> None:
    pa = sub.add_parser("plot-attention", help="draw a model's attention for one input (PNG)")
    pa.add_argument("--model", required=True, nargs="+")
    pa.add_argument("--input", required=True, help="the text to translate")
    pa.add_argument("--beam", type=int)
    pa.add_argument("--out", required=True, help="PNG file to write")
    device_arg(pa)
    pa.set_defaults(func=cmd_plot_attention)


def _plot_run_parser(sub) -> None:
    pr = sub.add_parser("plot-run", help="draw a run's loss and dev-metric curves (PNG)")
    pr.add_argument("run", help="run folder (holds scalars.csv)")
    pr.add_argument("--out", required=True, help="PNG file to write")
    pr.set_defaults(func=cmd_plot_run)


PARSERS = {"plot-attention": _plot_attention_parser, "plot-run": _plot_run_parser}
"""{command: the function that adds its parser to the subparsers}."""
