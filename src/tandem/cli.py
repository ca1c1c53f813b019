"""The `tandem` command: train | translate | evaluate | average | bench | data | serve | chat |
plot-attention | plot-run.

User errors (TandemError) print one line and exit with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tandem.errors import ConfigError, DataError, TandemError
from tandem.pronounce import DEFAULT_BEAM

log = logging.getLogger("tandem")


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


def _decode_args(p: argparse.ArgumentParser, defaults: dict | None = None,
                 skip: tuple[str, ...] = (), models: bool = True) -> None:
    """One flag per decoding option, generated from DecodeConfig's fields: the field name
    with dashes (--no-repeat-ngram-size), its type, its choices and its docstring as the
    help; a yes/no field gets --X and --no-X. An unset flag is None: the model's value is
    kept. `defaults` replaces None for some fields; `skip` leaves fields out; `models` adds
    --quantize and --rescore (--device is always there). Adding a field to DecodeConfig adds
    its flag here."""
    import typing

    from tandem.config import decode_fields

    g = p.add_argument_group("decoding (defaults: the model's decode section)")
    for f in decode_fields():
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = (defaults or {}).get(f.name)
        doc = f.doc + (f" (default here: {default})" if default is not None else "")
        kw = {"dest": f.name, "default": default, "help": doc.replace("%", "%%")}
        if f.type is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif typing.get_origin(f.type) is typing.Literal:
            g.add_argument(flag, choices=typing.get_args(f.type), **kw)
        else:
            g.add_argument(flag, type=f.type, metavar=f.type.__name__.upper(), **kw)
    if "allow_unk" not in skip:  # the flag's name before the options had one name each
        g.add_argument("--forbid-unk", dest="allow_unk", action="store_false", default=None,
                       help="the same as --no-allow-unk")
    if models:
        g.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantization (CPU)")
        g.add_argument("--rescore", nargs="+", metavar="MODEL",
                       help="rerank all beam candidates by the mean of the --model score and "
                            "these models' scores (e.g. right-to-left models: "
                            "data.reverse_target)")
    _device_arg(g)


def _device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto",
                   help="auto (a CUDA GPU when there is one), cpu, cuda or cuda:N")


def _translator(a: argparse.Namespace, first: dict | None = None):
    """The model(s) named by --model, on --device, quantized when --quantize asks for it
    (int8 runs on the CPU, so --device auto then means the CPU). `first`: the first
    checkpoint's contents when they have been read already."""
    from tandem.cpu import resolve_device
    from tandem.decode.translator import load

    quantize = getattr(a, "quantize", None)
    device = resolve_device("cpu" if quantize and a.device == "auto" else a.device, "--device")
    tr = load(*a.model, device=device, first=first)
    rescore = getattr(a, "rescore", None)
    if rescore:
        tr.rescore_with(*rescore)
    if quantize:
        for t in [tr, *tr.rescorers]:
            t.quantize(quantize)
    return tr


def _decode_options(a: argparse.Namespace) -> dict:
    """The decoding flags as keyword overrides, one per DecodeConfig field (None where the
    flag was not given, or the command has no such flag)."""
    from tandem.config import decode_fields

    return {f.name: getattr(a, f.name, None) for f in decode_fields()}


def cmd_train(a: argparse.Namespace) -> int:
    """`tandem train CONFIG` or `tandem train --resume RUN` (--set overrides either)."""
    from tandem.config import load_config
    from tandem.train import distributed
    from tandem.train.trainer import train

    if a.nproc is not None and not distributed.launched():
        return distributed.run_torchrun(a.nproc, _without_nproc(a.argv))
    overrides = a.set + ([f"train.device={a.device}"] if a.device else [])
    if a.resume:
        run = Path(a.resume)
        if not (run / "config.yaml").is_file():
            raise ConfigError(f"--resume {run}: not a run folder (no config.yaml in it); give "
                              "the run_dir of an earlier tandem train")
        cfg = load_config(run / "config.yaml", overrides)
        cfg.run_dir = str(run)
    else:
        if a.config is None:
            raise ConfigError("tandem train: give a config file, or --resume RUN_DIR")
        cfg = load_config(a.config, overrides)
    out = train(cfg, resume=bool(a.resume), overwrite=a.overwrite)
    if os.environ.get("RANK", "0") == "0":  # under torchrun rank 0 speaks for the run
        print(f"run folder: {out}\nbest model: {out / 'best.pt'}")
    return 0


def _without_nproc(argv: list[str]) -> list[str]:
    """A command line without its `--nproc N` / `--nproc=N` (what each rank runs)."""
    out, skip = [], False
    for x in argv:
        if skip:
            skip = False
        elif x == "--nproc":
            skip = True
        elif not x.startswith("--nproc="):
            out.append(x)
    return out


def _check_input(path: str | None, what: str = "one input per line") -> None:
    """A DataError naming --input when it is not an existing file; checked before a model
    loads, so a mistyped name fails at once."""
    if path is not None and not Path(path).is_file():
        raise DataError(f"--input {path}: file not found; give a text file ({what}), or leave "
                        "--input out to read stdin")


def _iter_inputs(path: str | None) -> Iterator[str]:
    """Lines of a file (TSV: the first column) or of stdin, read lazily, UTF-8 checked."""
    label = path or "<stdin>"
    f = open(path, "rb") if path else sys.stdin.buffer  # noqa: SIM115
    try:
        for i, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:  # translate what can be read; say what was not
                log.warning("%s:%d: not valid UTF-8 (byte %d); undecodable bytes replaced by "
                            "U+FFFD", label, i, e.start)
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            yield line.split("\t", 1)[0] if path else line
    finally:
        if path:
            f.close()


def cmd_translate(a: argparse.Namespace) -> int:
    """`tandem translate`: lines in (stdin or --input), outputs out, decoded with the flags'
    options over the model's."""
    _check_input(a.input)
    tr = _translator(a)
    opts = tr.options(**_decode_options(a))
    gen = _generator(tr, a.seed)
    out = open(a.output, "w", encoding="utf-8") if a.output else sys.stdout  # noqa: SIM115
    rows = []
    nbest = opts.nbest
    show = a.progress if a.progress is not None else (a.input is not None and
                                                       sys.stderr.isatty())
    total = None
    if show and a.input:
        with open(a.input, "rb") as f:
            total = sum(1 for _ in f)
    from tqdm import tqdm

    bar = tqdm(total=total, unit="line", disable=not show, file=sys.stderr)
    started, out_tokens, lines = time.perf_counter(), 0, 0
    for i, nb in enumerate(tr.stream(_iter_inputs(a.input), a.chunk, opts=opts,
                                     attention=bool(a.attention), generator=gen)):
        bar.update(1)
        lines += 1
        out_tokens += len(nb[0].tokens) if nb else 0
        if a.report_unknown and nb and nb[0].unknown:
            log.warning("input %d: never seen in training, read as <unk>: %s", i + 1,
                        " ".join(repr(t) for t in dict.fromkeys(nb[0].unknown)))
        for r in nb:
            if nbest > 1:
                out.write(f"{i}\t{r.text}\t{r.score:.4f}\n")
            elif a.scores:
                out.write(f"{r.text}\t{r.score:.4f}\n")
            else:
                out.write(r.text + "\n")
            if a.attention:
                rows.append({"index": i, "input": r.source, "output": r.text,
                             "src_tokens": r.src_tokens, "unknown": r.unknown,
                             "tgt_tokens": r.tokens + ["</s>"],
                             "attention": r.attention})
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


def cmd_serve(a: argparse.Namespace) -> int:
    """`tandem serve`: the HTTP API over the model, its decoding flags the server's
    defaults."""
    from tandem.serve import ServeOptions, serve

    opts = ServeOptions(max_body_bytes=a.max_body_bytes, max_inputs=a.max_inputs,
                        max_chars=a.max_chars, max_beam=a.max_beam, timeout_s=a.timeout,
                        batching=not a.no_batching, max_batch=a.max_batch,
                        max_wait_ms=a.max_wait_ms, max_queue=a.max_queue,
                        max_new_tokens=a.max_new_tokens)
    opts.check()  # before the model loads: a wrong flag fails at once
    pred, ckpt = _structured(a)
    if pred is not None:  # a classifier, tagger, language model or generator
        _no_seq2seq_flags(a, pred)
        from tandem.serve import serve_app
        from tandem.serve_structures import create_structure_app

        serve_app(create_structure_app(pred, opts), a.host, a.port)
        return 0
    # one output per input unless --nbest says otherwise (not the model's decode.nbest)
    tr = _translator(a, ckpt).set_defaults(**{**_decode_options(a), "nbest": a.nbest or 1})
    serve(tr, a.host, a.port, opts)
    return 0


def _generator(tr, seed: int | None):
    """The random numbers of sampling: seeded (repeatable outputs) when `seed` is given."""
    import torch

    return torch.Generator(device=tr.device).manual_seed(seed) if seed is not None else None


def cmd_chat(a: argparse.Namespace) -> int:
    """`tandem chat`: a reply (the best output) per line read, until EOF or /quit."""
    tr = _translator(a)
    opts = tr.options(**{**_decode_options(a), "nbest": 1})  # a reply is the best output
    tty = sys.stdin.isatty()
    if tty:
        print("tandem chat: type a message; /quit or Ctrl-D to leave", file=sys.stderr)
    gen = _generator(tr, a.seed)
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


def cmd_plot_attention(a: argparse.Namespace) -> int:
    """`tandem plot-attention`: the attention of one decode as a heatmap image."""
    from tandem.plots import plot_attention

    tr = _translator(a)
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


def _structured(a: argparse.Namespace):
    """(the predictor of --model, or None for a seq2seq model; the first checkpoint's
    contents, which `_translator` takes so that the file is read once)."""
    from tandem import checkpoint
    from tandem.cpu import resolve_device
    from tandem.predict import load_predictor

    ckpt = checkpoint.load(a.model[0])
    structure = ckpt.get("structure", "seq2seq")
    if structure == "seq2seq":
        return None, ckpt
    if len(a.model) > 1:
        raise ConfigError(f"--model: {a.model[0]} is a {structure} model; ensembles are for "
                          "seq2seq models, give one checkpoint")
    return load_predictor(a.model[0], ckpt).to(resolve_device(a.device, "--device")), ckpt


def _no_seq2seq_flags(a: argparse.Namespace, pred) -> None:
    """A ConfigError naming the seq2seq decoding flags given for a model of another structure
    (they would have no effect on it): a flag is never silently ignored."""
    given = [f"--{k.replace('_', '-')}" for k, v in _decode_options(a).items() if v is not None]
    given += [f for f, v in (("--quantize", getattr(a, "quantize", None)),
                             ("--rescore", getattr(a, "rescore", None))) if v]
    if given:
        raise ConfigError(f"{', '.join(given)}: decoding flags of a seq2seq model; "
                          f"{a.model[0]} is a {pred.structure} model, which they do not change "
                          "(leave them out)")


def _need(pred, command: str, structures: tuple[str, ...], instead: str) -> None:
    """A DataError when the loaded model's structure is not one `command` serves."""
    got = pred.structure if pred is not None else "seq2seq"
    if got not in structures:
        raise ConfigError(f"tandem {command}: --model is a {got} model; {command} serves "
                          f"{' and '.join(structures)} models ({instead})")


def _print_scores(res: dict, as_json: bool, extra: dict) -> None:
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


def cmd_evaluate(a: argparse.Namespace) -> int:
    """`tandem evaluate`: decode a test set and score it against its references, or for a
    classifier, tagger, language model or generator, score it with the structure's
    metrics."""
    from tandem.data.corpora import read_references
    from tandem.evaluate import evaluate_outputs, group_references

    pred, ckpt = _structured(a)
    if a.features is not None:  # never silently scored without the matrix asked for
        if pred is None or pred.structure != "generate":
            raise ConfigError(f"--features: {a.model[0]} is a "
                              f"{pred.structure if pred else 'seq2seq'} model; --features is "
                              "for a generator conditioned on feature vectors")
        if a.data is None:
            raise ConfigError(f"--features {a.features}: give --data too, the text file whose "
                              "line i row i of the matrix conditions (without --data the "
                              f"{a.split} split of the model's config is scored)")
    if pred is not None:
        _no_seq2seq_flags(a, pred)
        res = pred.evaluate(a.data, a.features, a.split)
        _print_scores(res, a.json, {"model": a.model[0], "structure": pred.structure})
        return 0
    if a.data is None:
        raise ConfigError("tandem evaluate: give --data (a TSV of source<TAB>reference, or "
                          "paired files with --src-suffix/--tgt-suffix)")
    tr = _translator(a, ckpt)
    pairs = read_references(a.data, a.src_suffix, a.tgt_suffix)
    srcs, refs = group_references(pairs)
    opts = tr.options(**{**_decode_options(a), "nbest": 1})  # the best output is scored
    hyps = tr.translate(srcs, opts=opts)
    res = evaluate_outputs(tr.fields, hyps, refs, a.metrics)
    if a.json:
        print(json.dumps({"model": a.model, "data": a.data, "sentences": len(srcs),
                          "beam": opts.beam, **res}))
    else:
        print(f"{a.data}: {len(srcs)} inputs ({len(pairs)} references)")
        for k, v in res.items():
            print(f"  {k:<17}{v:8.2f}")
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    """`tandem predict`: a label (with its probability, or the --topk best) for each line
    read, or the tag of every word of each line."""
    _check_input(a.input)
    pred, _ = _structured(a)
    _need(pred, "predict", ("classify", "tag"), "tandem translate for seq2seq, tandem "
          "generate for lm and generate")
    out = open(a.output, "w", encoding="utf-8") if a.output else sys.stdout
    try:
        buf: list[str] = []

        def flush() -> None:
            if not buf:
                return
            if pred.structure == "classify":
                for text, top in zip(buf, pred.predict(buf, a.topk), strict=True):
                    if a.json:
                        row = {"text": text, "labels": [{"label": lab, "prob": p}
                                                        for lab, p in top]}
                        out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    else:
                        out.write("\t".join(f"{lab}\t{p:.4f}" for lab, p in top) + "\n")
            else:
                for text, pairs in zip(buf, pred.tag(buf), strict=True):
                    if a.json:
                        row = {"text": text, "words": [w for w, _ in pairs],
                               "tags": [t for _, t in pairs]}
                        out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    elif a.tags_only:
                        out.write(" ".join(t for _, t in pairs) + "\n")
                    else:
                        out.write(" ".join(f"{w}/{t}" for w, t in pairs) + "\n")
            out.flush()
            buf.clear()

        where = a.input or "<stdin>"
        item = "text to classify" if pred.structure == "classify" else "sentence to tag"
        for n, line in enumerate(_iter_inputs(a.input), 1):
            if not line.strip():
                raise DataError(f"{where}:{n}: empty line; each line must hold one {item}")
            # a line of only characters the tokenizer drops (sentencepiece drops zero-width
            # and control characters) has nothing to classify: named here by its line, where
            # the predictor could only count within the chunk
            if pred.structure == "classify" and not pred.fields.encode_text(line):
                raise DataError(f"{where}:{n}: empty after tokenization (the model's "
                                f"{pred.fields.tok.kind} tokenizer keeps none of its "
                                f"characters); each line must hold one {item}")
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
    pred, _ = _structured(a)
    _need(pred, "generate", ("lm", "generate"), "tandem translate for seq2seq, tandem "
          "predict for classify and tag")
    options = {"temperature": a.temperature, "top_k": a.top_k, "beam": a.beam,
               "sample": False if a.greedy else None}
    if pred.structure == "lm":
        if a.label or a.features:
            raise ConfigError("tandem generate: --label and --features are for a conditional "
                              "generator; a language model continues --prompt")
        prompts = a.prompt or [""]
        texts = pred.generate(prompts, a.n, a.max_len, a.seed, **options)
        starts = [p for p in prompts for _ in range(a.n)]
        for i, (p, t) in enumerate(zip(starts, texts, strict=True)):
            if i:
                print("\n" + "-" * 40)
            print(p + t, flush=True)
        return 0
    if a.prompt:
        raise ConfigError("tandem generate: --prompt is for a language model; a conditional "
                          "generator writes from --label (or --features)")
    if a.label and pred.fields.num_features:
        raise ConfigError(f"--label: this generator writes from feature vectors of "
                          f"{pred.fields.num_features} numbers, not from a label; give "
                          "--features (a .npy matrix, one row per output)")
    features = _feature_rows(a.features, pred) if a.features is not None else None
    labels = a.label if a.label else None
    if labels is None and features is None:
        labels = pred.labels if not pred.fields.num_features else None
    texts = pred.generate(labels, features, a.n, a.max_len, a.seed, **options)
    conds = ([lab for lab in labels for _ in range(a.n)] if labels is not None
             else [f"row {i}" for i in range(len(texts) // a.n) for _ in range(a.n)])
    for c, t in zip(conds, texts, strict=True):
        print(f"{c}\t{t}", flush=True)
    return 0


def _feature_rows(path: str, pred):
    """`generate --features`: the (N, F) matrix of a .npy file for a generator conditioned on
    vectors of F numbers; anything else is one error naming --features, the file and what
    the model reads."""
    import numpy as np

    width = pred.fields.num_features
    if not width:
        raise ConfigError(f"--features {path}: this generator writes from a label, not from "
                          f"feature vectors; give --label (one of {', '.join(pred.labels[:20])}"
                          f"{' ...' if len(pred.labels) > 20 else ''})")
    need = f"a .npy file (numpy.save) of an (N, {width}) matrix of numbers, one row per output"
    if not Path(path).is_file():
        raise DataError(f"--features {path}: file not found; give {need}")
    try:
        with open(path, "rb") as f:
            arr = np.load(f, allow_pickle=False)
    except (OSError, ValueError, EOFError):  # text, pickle, truncated: numpy's words mislead
        arr = None
    if not isinstance(arr, np.ndarray):  # also an .npz, which holds several arrays
        raise DataError(f"--features {path}: not a .npy file; give {need}")
    numeric = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating) \
        or arr.dtype == np.bool_
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] != width or not numeric:
        raise DataError(f"--features {path}: an array of shape {tuple(arr.shape)} "
                        f"({arr.dtype}); give {need}")
    finite = np.isfinite(arr.astype(np.float32)).all(axis=1)
    if not finite.all():
        raise DataError(f"--features {path}: row {int(np.argmin(finite))} holds NaN or infinity "
                        "(or a value too large for float32); give finite numbers")
    return arr


def cmd_average(a: argparse.Namespace) -> int:
    """`tandem average CKPT... --out FILE`: the mean of checkpoints of one run."""
    from tandem.train.average import average

    out = average(a.checkpoints, a.out)
    print(f"averaged {len(a.checkpoints)} checkpoints -> {out}")
    return 0


def _g2p_words(a: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(words, where each came from) for `tandem g2p`: the arguments, else --input, else
    stdin; one word per line (a TSV line: its first column), blank lines skipped."""
    if a.words:
        return list(a.words), [f"argument {i + 1}" for i in range(len(a.words))]
    label = a.input or "<stdin>"
    words, where = [], []
    for i, line in enumerate(_iter_inputs(a.input), 1):
        if line.strip():
            words.append(line.strip())
            where.append(f"{label}:{i}")
    return words, where


def cmd_g2p(a: argparse.Namespace) -> int:
    """`tandem g2p WORD ...` (or --input FILE, or stdin): WORD<TAB>PHONEMES lines, the CMU
    dictionary first, the shipped model for other words; words are decoded in chunks
    (`g2p_chunks`: a small first one, then G2P_CHUNK at a time), so the first lines come out
    early and memory stays flat on long inputs."""
    from tandem.pronounce import G2P

    _check_input(a.input, "one word per line")
    words, where = _g2p_words(a)
    g = G2P(a.model, dictionary=not a.no_dictionary, device=a.device, beam=a.beam,
            quantize=a.quantize)
    out = sys.stdout
    for start, end in g2p_chunks(len(words)):
        chunk = words[start:end]
        results = g.pronounce(chunk, nbest=a.nbest, all_variants=a.all,
                              stress=not a.no_stress, where=where[start:end])
        for word, prons in zip(chunk, results, strict=True):
            if a.json:
                out.write(json.dumps({"word": word, "pronunciations": [
                    {"phonemes": p.phonemes, "source": p.source} for p in prons]}) + "\n")
            else:
                for p in prons:
                    out.write(f"{word}\t{p.phonemes}\n")
        out.flush()
    return 0


G2P_CHUNK = 1024
"""Words `tandem g2p` pronounces per batched call (its output is written after each)."""
G2P_FIRST_CHUNK = 64
"""The first call's words: a small first chunk makes the first lines come out early."""


def g2p_chunks(n: int) -> list[tuple[int, int]]:
    """(start, end) of the chunks `tandem g2p` pronounces n words in: G2P_FIRST_CHUNK words,
    then G2P_CHUNK at a time."""
    bounds, start = [], 0
    while start < n:
        end = min(n, start + (G2P_FIRST_CHUNK if start == 0 else G2P_CHUNK))
        bounds.append((start, end))
        start = end
    return bounds


def cmd_distill(a: argparse.Namespace) -> int:
    """`tandem distill --teacher A.pt [B.pt ...] [--rescore R.pt] --data F --out F`: the
    teacher's output for every source line of F (sequence-level knowledge distillation)."""
    from tandem.data.corpora import read_sources

    sources = read_sources(a.data)
    if any(not s.strip() for s in sources):
        bad = next(i for i, s in enumerate(sources, 1) if not s.strip())
        raise DataError(f"{a.data}:{bad}: empty source; every line needs one to distil")
    a.model = a.teacher
    tr = _translator(a)
    opts = tr.options(**{**_decode_options(a), "nbest": 1, "sample": False})
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


def _tag(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a tag may hold letters, digits, '_', '.' and '-' only")
    return text


def _positive(text: str) -> int:
    """argparse type: a whole number >= 1."""
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number >= 1 is needed")
    return int(text)


def cmd_bench(a: argparse.Namespace) -> int:
    """`tandem bench`: time training and searches on this machine."""
    from tandem.bench import main as bench_main

    bench_main(a.sizes, a.quick, a.out, a.variants, a.device, a.batch_tokens, a.tag or "",
               a.steps, a.sentences)
    return 0


def cmd_data(a: argparse.Namespace) -> int:
    """`tandem data`: write a built-in task's splits as TSV files."""
    from tandem.data.tasks import write_splits

    paths = write_splits(a.task, a.out, tuple(a.sizes), a.seed, a.min_len, a.max_len)
    for split, p in paths.items():
        print(f"{split}: {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every `tandem` command (docs/cli.md is generated from it)."""
    p = argparse.ArgumentParser(prog="tandem", description="RNN encoder-decoder toolkit")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages too")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a YAML config")
    t.add_argument("config", nargs="?", help="YAML config file")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.hidden_size=512")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoints and logs of an earlier run in the run folder")
    t.add_argument("--device", help="the same as --set train.device=... (auto, cpu, cuda, "
                   "cuda:N)")
    t.add_argument("--nproc", type=int, metavar="N",
                   help="train with N data-parallel ranks on this machine (starts torchrun; "
                   "for several machines run torchrun yourself, see docs/distributed.md)")
    t.set_defaults(func=cmd_train)

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
    _decode_args(tr)
    tr.set_defaults(func=cmd_translate)

    pd = sub.add_parser("predict", help="a classifier's label, or a tagger's tags, for each "
                        "line from stdin or a file")
    pd.add_argument("--model", required=True, nargs=1, help="a classify or tag checkpoint")
    pd.add_argument("--input", help="input file (default stdin); TSV: first column")
    pd.add_argument("--output", help="output file (default stdout)")
    pd.add_argument("--topk", type=_positive, default=1,
                    help="classify: print the K most likely labels, LABEL<TAB>PROB each")
    pd.add_argument("--tags-only", action="store_true",
                    help="tag: print the tags alone (space separated, one per word)")
    pd.add_argument("--json", action="store_true", help="one JSON object per line")
    pd.add_argument("--chunk", type=_positive, default=1000, help="lines read per batch")
    _device_arg(pd)
    pd.set_defaults(func=cmd_predict)

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
    g.add_argument("--n", type=_positive, default=1, help="outputs per prompt, label or row")
    g.add_argument("--max-len", type=_positive, help="tokens to write at most (default 200)")
    g.add_argument("--temperature", type=float, help="sampling temperature (default: the "
                   "model's decode.temperature)")
    g.add_argument("--top-k", type=int, help="sample from the K most likely tokens (0 = all)")
    g.add_argument("--beam", type=_positive, help="beam search of this width instead of sampling")
    g.add_argument("--greedy", action="store_true", help="the most likely token at every step "
                   "instead of sampling")
    g.add_argument("--seed", type=int, help="seed of the sampling (repeatable outputs)")
    _device_arg(g)
    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("evaluate", help="score a model on a test set (seq2seq: a TSV or paired "
                       "files; other structures: a file in their format, or their test split)")
    e.add_argument("--model", required=True, nargs="+", help="checkpoint(s); several = ensemble")
    e.add_argument("--features", metavar="NPY", help="generate: the .npy matrix of --data's "
                   "lines")
    e.add_argument("--split", choices=["train", "dev", "test"], default="test",
                   help="classify, tag, lm, generate without --data: the split of the model's "
                   "config to score (default test)")
    e.add_argument("--data",
                   help="seq2seq: a TSV (source<TAB>ref[<TAB>ref...]; a source on several "
                        "lines has several references), or a prefix with --src/--tgt-suffix; "
                        "classify: text<TAB>label; tag: CoNLL-U or word<TAB>tag; lm: plain "
                        "text; generate: label<TAB>text (or text lines with --features); "
                        "default for those: --split of the model's config")
    e.add_argument("--src-suffix")
    e.add_argument("--tgt-suffix")
    e.add_argument("--metrics", nargs="+", help="subset of metrics (default all)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    _decode_args(e, skip=("nbest",))  # the best output is scored: one per input
    e.set_defaults(func=cmd_evaluate)

    av = sub.add_parser("average", help="average the parameters of checkpoints of one run")
    av.add_argument("checkpoints", nargs="+")
    av.add_argument("--out", required=True)
    av.set_defaults(func=cmd_average)

    g = sub.add_parser("g2p", help="English pronunciations (ARPAbet): the CMU dictionary, "
                       "then the shipped model")
    g.add_argument("words", nargs="*", metavar="WORD",
                   help="words to pronounce (default: one per line from --input or stdin)")
    g.add_argument("--input", help="a file of words, one per line (TSV: the first column)")
    g.add_argument("--all", action="store_true",
                   help="every pronunciation the dictionary has (default: its first)")
    g.add_argument("--nbest", type=_positive, default=1,
                   help="the model's K best guesses for words the dictionary lacks")
    g.add_argument("--no-stress", action="store_true", help="strip the stress digits")
    g.add_argument("--no-dictionary", action="store_true",
                   help="send every word to the model (to compare it with the dictionary)")
    g.add_argument("--model", help="another G2P checkpoint (default: the shipped model)")
    g.add_argument("--beam", type=_positive, default=DEFAULT_BEAM,
                   help="search width for words the dictionary lacks (default 2: as accurate "
                        "as 5 on held-out words, and faster; --nbest K searches with at "
                        "least K)")
    g.add_argument("--quantize", choices=["int8"],
                   help="dynamic int8 quantization (CPU): faster, as accurate on held-out "
                        "words (docs/g2p_model.md)")
    g.add_argument("--json", action="store_true",
                   help="one JSON object per word: its pronunciations and their sources")
    _device_arg(g)
    g.set_defaults(func=cmd_g2p, device="cpu")

    ds = sub.add_parser("distill", help="write a teacher's outputs for a training file "
                        "(sequence-level knowledge distillation)")
    ds.add_argument("--teacher", nargs="+", required=True, metavar="MODEL",
                    help="the teacher: one model or an ensemble")
    ds.add_argument("--data", required=True,
                    help="the sources to decode (TSV: the first column; else every line)")
    ds.add_argument("--out", required=True,
                    help="source<TAB>teacher output, one line per input line")
    _decode_args(ds, models=True, skip=("nbest", "sample", "temperature", "top_k"))
    ds.set_defaults(func=cmd_distill)

    b = sub.add_parser("bench", help="training and search speed on this machine, against its "
                       "matmul peak")
    b.add_argument("--sizes", nargs="+", default=["small", "base"], choices=["small", "base"],
                   help="LSTM models to time: small (1 layer, hidden 256), base (2 layers, "
                        "hidden 512)")
    b.add_argument("--variants", nargs="+", choices=["init", "every_step", "additive",
                                                     "additive+feed", "general", "general+feed"],
                   help="the decoder variants to time (default: all)")
    b.add_argument("--quick", action="store_true", help="fewer steps and sentences")
    b.add_argument("--steps", type=_positive,
                   help="timed training steps per model (default 10, 3 with --quick)")
    b.add_argument("--sentences", type=_positive,
                   help="sentences decoded per search rate (default 24 at batch 1 and 192 at "
                        "batch 64, 8 and 64 with --quick)")
    b.add_argument("--out", default=".", help="folder for the result's JSON file")
    b.add_argument("--tag", default=None, type=_tag,
                   help="appended to the result's file name (speed-<date>[-device]-TAG.json), "
                        "so a second run on one day keeps the first")
    b.add_argument("--device", default="cpu",
                   help="cpu (the default: the whole benchmark), or cuda / cuda:N (speed, "
                        "utilisation and bf16 on the GPU; no int8)")
    b.add_argument("--batch-tokens", type=_positive, default=4000,
                   help="training batch size in tokens")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("data", help="write a built-in task's train/dev/test TSV files")
    d.add_argument("task", help="copy, reverse, sort, addition or dates")
    d.add_argument("--out", required=True)
    d.add_argument("--sizes", type=int, nargs=3, default=[20000, 1000, 1000],
                   metavar=("TRAIN", "DEV", "TEST"))
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--min-len", type=int, default=1)
    d.add_argument("--max-len", type=int, default=15)
    d.set_defaults(func=cmd_data)

    sv = sub.add_parser("serve", help="HTTP API and web page over a model (FastAPI + uvicorn)")
    sv.add_argument("--model", required=True, nargs="+", help="checkpoint(s); several = ensemble")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--max-body-bytes", type=int, default=65_536)
    sv.add_argument("--max-inputs", type=int, default=64, help="inputs per request")
    sv.add_argument("--max-chars", type=int, default=1_000, help="characters per input")
    sv.add_argument("--max-beam", type=int, default=16)
    sv.add_argument("--timeout", type=float, default=30.0,
                    help="seconds a request may wait for its decode before a 503")
    sv.add_argument("--max-batch", type=int, default=64, help="sentences decoded together")
    sv.add_argument("--max-wait-ms", type=float, default=5.0,
                    help="how long a request waits for others to share its batch")
    sv.add_argument("--max-queue", type=int, default=1024,
                    help="sentences waiting to be decoded; beyond it requests get 503 at once")
    sv.add_argument("--no-batching", action="store_true", help="decode requests one by one")
    sv.add_argument("--max-new-tokens", type=int, default=1000,
                    help="lm, generate: the longest output a request may ask for")
    _decode_args(sv)
    sv.set_defaults(func=cmd_serve)

    ch = sub.add_parser("chat", help="talk to a dialogue model (reads lines until EOF or /quit)")
    ch.add_argument("--model", required=True, nargs="+")
    ch.add_argument("--seed", type=int, help="seed for --sample (repeatable replies)")
    _decode_args(ch, defaults={"temperature": 0.8, "top_k": 20}, skip=("nbest",), models=False)
    ch.set_defaults(func=cmd_chat)

    pa = sub.add_parser("plot-attention", help="draw a model's attention for one input (PNG)")
    pa.add_argument("--model", required=True, nargs="+")
    pa.add_argument("--input", required=True, help="the text to translate")
    pa.add_argument("--beam", type=int)
    pa.add_argument("--out", required=True, help="PNG file to write")
    _device_arg(pa)
    pa.set_defaults(func=cmd_plot_attention)

    pr = sub.add_parser("plot-run", help="draw a run's loss and dev-metric curves (PNG)")
    pr.add_argument("run", help="run folder (holds scalars.csv)")
    pr.add_argument("--out", required=True, help="PNG file to write")
    pr.set_defaults(func=cmd_plot_run)
    return p


def main(argv: list[str] | None = None) -> int:
    """The `tandem` command: parse, run, and turn user errors into one line and exit code 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    _setup_logging(args.verbose)
    if args.command in ("translate", "evaluate", "bench", "serve", "chat", "plot-attention",
                        "predict", "generate"):
        from tandem.cpu import configure

        configure()
    try:
        return args.func(args)
    except TandemError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
