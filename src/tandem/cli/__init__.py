"""The `tandem` command. Its commands, by the module that holds their handlers and parsers:

- train.py: train, average, data, bench (making models and task data; timing this machine)
- decode.py: translate, evaluate, distill, chat (a seq2seq model's searches; evaluate scores
  the other structures too)
- predict.py: predict, generate (classifiers and taggers; language models and generators)
- serve.py: serve (the HTTP API and web page)
- export.py: export (ONNX graphs and a manifest for the lean runtime)
- g2p.py: g2p (English pronunciations)
- plots.py: plot-attention, plot-run (pictures)

beside args.py (the flags several commands share), inputs.py (reading --input or stdin),
models.py (loading --model) and output.py (how results are printed).

User errors (TandemError) print one line and exit with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from tandem.cli import decode, export, g2p, plots, predict, serve, train
from tandem.cli.g2p import G2P_CHUNK, G2P_FIRST_CHUNK, g2p_chunks
from tandem.errors import TandemError

__all__ = ["COMMANDS", "G2P_CHUNK", "G2P_FIRST_CHUNK", "build_parser", "g2p_chunks", "main"]

log = logging.getLogger("tandem")

COMMANDS = ("train", "translate", "predict", "generate", "evaluate", "average", "export",
            "g2p", "distill", "bench", "data", "serve", "chat", "plot-attention", "plot-run")
"""Every command, in the order `tandem --help` and docs/cli.md list them, whichever module
holds it."""

_MODEL_COMMANDS = ("translate", "evaluate", "bench", "serve", "chat", "plot-attention",
                   "predict", "generate")
"""The commands that run a model here, and so need the CPU's thread settings first."""


TRAIN_EXTRA = ("torch", "sacrebleu", "matplotlib", "tensorboard", "chatterbot_corpus", "conllu")
"""Modules only `pip install "tandem[train]"` brings: training, scoring checkpoints, plots."""


def _runs_an_export(args: argparse.Namespace) -> bool:
    """Whether the command runs an export (--model names an export folder), which needs no
    torch settings."""
    from tandem.runtime import is_export

    model = getattr(args, "model", None)
    first = model[0] if isinstance(model, list) and model else model
    return bool(first) and is_export(first)


class _TqdmHandler(logging.StreamHandler):
    """Log lines that do not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never crash training
            self.handleError(record)


class _StderrHandler(logging.StreamHandler):
    """Log lines on whatever `sys.stderr` is when each is written, not the stream it was when
    the first command ran: a program (or a test) that calls `main` several times and replaces
    stderr in between keeps getting the log, never a closed stream."""

    @property
    def stream(self):  # noqa: D102 - logging.StreamHandler's attribute, looked up each time
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _setup_logging(verbose: bool) -> None:
    """tandem's log on stderr, message only; on a terminal written around progress bars, in
    a file or a pipe as plain lines. Under torchrun ranks other than 0 log warnings and
    errors only, each line prefixed with the rank (rank 0 speaks for the run)."""
    if log.handlers:
        return
    h = _TqdmHandler() if sys.stderr.isatty() else _StderrHandler()
    rank = int(os.environ.get("RANK", "0") or 0) if "WORLD_SIZE" in os.environ else 0
    h.setFormatter(logging.Formatter(f"[rank {rank}] %(message)s" if rank else "%(message)s"))
    log.addHandler(h)
    log.setLevel(logging.WARNING if rank else logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every `tandem` command (docs/cli.md is generated from it): each
    command's parser comes from its module's PARSERS, added in the order of COMMANDS."""
    p = argparse.ArgumentParser(prog="tandem", description="RNN encoder-decoder toolkit")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
    sub = p.add_subparsers(dest="command", required=True)
    parsers = {name: add for module in (train, decode, predict, export, serve, g2p, plots)
               for name, add in module.PARSERS.items()}
    for name in sorted(parsers, key=COMMANDS.index):  # a command not in COMMANDS fails here
        parsers[name](sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """The `tandem` command: parse, run, and turn user errors into one line and exit code 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    _setup_logging(args.verbose)
    try:
        if args.command in _MODEL_COMMANDS and not _runs_an_export(args):
            from tandem.cpu import configure

            configure()
        if args.command == "g2p" or _runs_an_export(args):
            from tandem.runtime.models import share_malloc_arenas

            share_malloc_arenas()
        return args.func(args)
    except TandemError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:  # a lean install (no `train` extra) asked for training
        top = (e.name or "").split(".")[0]
        if top not in TRAIN_EXTRA:
            raise
        print(f"error: tandem {args.command} needs the train extra ({top} is not installed): "
              "pip install 'tandem[train]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
