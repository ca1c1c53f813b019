"""The `tandem` command: train | translate | evaluate | average | bench | data | serve | chat |
plot-attention | plot-run.

User errors (TandemError) print one line and exit with code 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tandem.errors import ConfigError, DataError, TandemError

log = logging.getLogger("tandem")


class _TqdmHandler(logging.StreamHandler):
    """Log lines that do not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never crash training
            self.handleError(record)


def _setup_logging(verbose: bool) -> None:
    if log.handlers:
        return
    h = _TqdmHandler()
    h.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(h)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


def _decode_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("decoding (defaults: the model's decode section)")
    g.add_argument("--beam", type=int, help="beam size; 1 = greedy")
    g.add_argument("--nbest", type=int, help="outputs per input (<= beam)")
    g.add_argument("--length-penalty", type=float, help="alpha in score / length**alpha")
    g.add_argument("--length-norm", choices=["power", "gnmt"],
                   help="length**alpha, or GNMT's ((5 + length) / 6)**alpha")
    g.add_argument("--coverage-penalty", type=float, help="beta of GNMT's coverage penalty")
    g.add_argument("--no-repeat-ngram-size", type=int, help="never repeat an n-gram of this size")
    g.add_argument("--forbid-unk", action="store_true", default=None,
                   help="never output <unk>")
    g.add_argument("--max-len-a", type=float, help="max output length = a * source length + b")
    g.add_argument("--max-len-b", type=int)
    g.add_argument("--batch-size", type=int, help="sentences per decoding batch")
    g.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantization (CPU)")
    g.add_argument("--rescore", nargs="+", metavar="MODEL",
                   help="rerank all beam candidates by the mean of the --model score and these "
                        "models' scores (e.g. right-to-left models: data.reverse_target)")
    _device_arg(g)
    g.add_argument("--on-long-input", choices=["truncate", "error"],
                   help="inputs longer than the model's data.max_src_len (default truncate)")
    g.add_argument("--bf16", action="store_true", default=None,
                   help="bfloat16 autocast (fast only on CPUs with native bf16)")


def _device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto",
                   help="auto (a CUDA GPU when there is one), cpu, cuda or cuda:N")


def _translator(a: argparse.Namespace):
    """The model(s) named by --model, on --device, quantized when --quantize asks for it
    (int8 runs on the CPU, so --device auto then means the CPU)."""
    from tandem.cpu import resolve_device
    from tandem.decode.translator import load

    quantize = getattr(a, "quantize", None)
    device = resolve_device("cpu" if quantize and a.device == "auto" else a.device, "--device")
    tr = load(*a.model, device=device)
    rescore = getattr(a, "rescore", None)
    if rescore:
        tr.rescore_with(*rescore)
    if quantize:
        for t in [tr, *tr.rescorers]:
            t.quantize(quantize)
    return tr


def _decode_options(a: argparse.Namespace) -> dict:
    return {"beam": a.beam, "nbest": a.nbest, "length_penalty": a.length_penalty,
            "length_norm": a.length_norm, "coverage_penalty": a.coverage_penalty,
            "no_repeat_ngram_size": a.no_repeat_ngram_size,
            "allow_unk": None if a.forbid_unk is None else not a.forbid_unk,
            "max_len_a": a.max_len_a, "max_len_b": a.max_len_b, "batch_size": a.batch_size,
            "bf16": a.bf16, "on_long_input": a.on_long_input}


def cmd_train(a: argparse.Namespace) -> int:
    from tandem.config import load_config
    from tandem.train.trainer import train

    overrides = a.set + ([f"train.device={a.device}"] if a.device else [])
    if a.resume:
        run = Path(a.resume)
        cfg = load_config(run / "config.yaml", overrides)
        cfg.run_dir = str(run)
    else:
        if a.config is None:
            raise ConfigError("tandem train: give a config file, or --resume RUN_DIR")
        cfg = load_config(a.config, overrides)
    out = train(cfg, resume=bool(a.resume), overwrite=a.overwrite)
    print(f"run folder: {out}\nbest model: {out / 'best.pt'}")
    return 0


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
    if a.input and not Path(a.input).is_file():
        raise DataError(f"{a.input}: input file not found")
    tr = _translator(a)
    opts = _decode_options(a)
    if a.sample:
        opts.update(temperature=a.temperature, top_k=a.top_k)
    out = open(a.output, "w", encoding="utf-8") if a.output else sys.stdout  # noqa: SIM115
    rows = []
    nbest = opts["nbest"] or tr.decode_cfg.nbest
    show = a.progress if a.progress is not None else (a.input is not None and
                                                       sys.stderr.isatty())
    total = None
    if show and a.input:
        with open(a.input, "rb") as f:
            total = sum(1 for _ in f)
    from tqdm import tqdm

    bar = tqdm(total=total, unit="line", disable=not show, file=sys.stderr)
    started, out_tokens, lines = time.perf_counter(), 0, 0
    for i, nb in enumerate(tr.stream(_iter_inputs(a.input), attention=bool(a.attention),
                                     sample=a.sample, chunk=a.chunk, **opts)):
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
    from tandem.serve import ServeOptions, serve

    tr = _translator(a)
    opts = ServeOptions(max_body_bytes=a.max_body_bytes, max_inputs=a.max_inputs,
                        max_chars=a.max_chars, max_beam=a.max_beam, timeout_s=a.timeout,
                        batching=not a.no_batching, max_batch=a.max_batch,
                        max_wait_ms=a.max_wait_ms, max_queue=a.max_queue)
    for name in ("max_body_bytes", "max_inputs", "max_chars", "max_beam", "max_batch",
                 "max_queue"):
        if getattr(opts, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: expected an integer >= 1, got "
                              f"{getattr(opts, name)}")
    if opts.timeout_s <= 0 or opts.max_wait_ms < 0:
        raise ConfigError("--timeout must be > 0 and --max-wait-ms >= 0")
    serve(tr, a.host, a.port, opts)
    return 0


def cmd_chat(a: argparse.Namespace) -> int:
    tr = _translator(a)
    opts = {"max_len_b": a.max_len_b, **({"temperature": a.temperature, "top_k": a.top_k}
                                          if a.sample else {"beam": a.beam, "nbest": 1})}
    tty = sys.stdin.isatty()
    if tty:
        print("tandem chat: type a message; /quit or Ctrl-D to leave", file=sys.stderr)
    import torch

    gen = torch.Generator(device=tr.device).manual_seed(a.seed) if a.seed is not None else None
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
        reply = tr.translate_full([line], sample=a.sample, generator=gen, **opts)[0][0].text
        print(reply, flush=True)
    return 0


def cmd_plot_attention(a: argparse.Namespace) -> int:
    from tandem.plots import plot_attention

    tr = _translator(a)
    r = tr.translate_full([a.input], attention=True, beam=a.beam)[0][0]
    if not r.tokens or r.attention is None:
        raise DataError(f"the model produced no output for {a.input!r}; nothing to draw")
    plot_attention(r.src_tokens, r.tokens, r.token_attention, a.out)
    print(f"{r.text}\nwrote {a.out}")
    return 0


def cmd_plot_run(a: argparse.Namespace) -> int:
    from tandem.plots import plot_run

    plot_run(a.run, a.out)
    print(f"wrote {a.out}")
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from tandem.data.corpora import read_references
    from tandem.train.trainer import evaluate_outputs, group_references

    tr = _translator(a)
    pairs = read_references(a.data, a.src_suffix, a.tgt_suffix)
    srcs, refs = group_references(pairs)
    opts = _decode_options(a)
    opts["nbest"] = 1
    hyps = tr.translate(srcs, **opts)
    res = evaluate_outputs(tr.fields, hyps, refs, a.metrics)
    if a.json:
        print(json.dumps({"model": a.model, "data": a.data, "sentences": len(srcs),
                          "beam": opts["beam"] or tr.decode_cfg.beam, **res}))
    else:
        print(f"{a.data}: {len(srcs)} inputs ({len(pairs)} references)")
        for k, v in res.items():
            print(f"  {k:<17}{v:8.2f}")
    return 0


def cmd_average(a: argparse.Namespace) -> int:
    from tandem.train.average import average

    out = average(a.checkpoints, a.out)
    print(f"averaged {len(a.checkpoints)} checkpoints -> {out}")
    return 0


def _tag(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a tag may hold letters, digits, '_', '.' and '-' only")
    return text


def cmd_bench(a: argparse.Namespace) -> int:
    from tandem.bench import main as bench_main

    bench_main(a.sizes, a.quick, a.out, a.variants, a.device, a.batch_tokens, a.tag or "")
    return 0


def cmd_data(a: argparse.Namespace) -> int:
    from tandem.data.tasks import write_splits

    paths = write_splits(a.task, a.out, tuple(a.sizes), a.seed, a.min_len, a.max_len)
    for split, p in paths.items():
        print(f"{split}: {p}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tandem", description="RNN encoder-decoder toolkit")
    p.add_argument("-v", "--verbose", action="store_true")
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
    t.set_defaults(func=cmd_train)

    tr = sub.add_parser("translate", help="translate lines from stdin or a file")
    tr.add_argument("--model", required=True, nargs="+",
                    help="checkpoint (best.pt); several = an ensemble")
    tr.add_argument("--input", help="input file (default stdin); TSV: first column")
    tr.add_argument("--output", help="output file (default stdout)")
    tr.add_argument("--scores", action="store_true", help="write TEXT<TAB>SCORE")
    tr.add_argument("--attention", metavar="FILE", help="write attention weights as JSON")
    tr.add_argument("--sample", action="store_true", help="sample instead of searching")
    tr.add_argument("--report-unknown", action="store_true",
                    help="warn on stderr about input tokens the model never saw in training")
    tr.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="progress bar on stderr (default: when --input is given on a terminal)")
    tr.add_argument("--chunk", type=int, default=1000,
                    help="lines read and decoded per chunk (sorted by length within it)")
    tr.add_argument("--temperature", type=float, default=1.0)
    tr.add_argument("--top-k", type=int, default=0)
    _decode_args(tr)
    tr.set_defaults(func=cmd_translate)

    e = sub.add_parser("evaluate", help="score a model on a TSV (or paired) test set")
    e.add_argument("--model", required=True, nargs="+", help="checkpoint(s); several = ensemble")
    e.add_argument("--data", required=True,
                   help="TSV (source<TAB>ref[<TAB>ref...]; a source on several lines has "
                        "several references), or a prefix with --src/--tgt-suffix")
    e.add_argument("--src-suffix")
    e.add_argument("--tgt-suffix")
    e.add_argument("--metrics", nargs="+", help="subset of metrics (default all)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    _decode_args(e)
    e.set_defaults(func=cmd_evaluate)

    av = sub.add_parser("average", help="average the parameters of checkpoints of one run")
    av.add_argument("checkpoints", nargs="+")
    av.add_argument("--out", required=True)
    av.set_defaults(func=cmd_average)

    b = sub.add_parser("bench", help="training/decoding speed vs matmul peak and a reference")
    b.add_argument("--sizes", nargs="+", default=["small", "base"], choices=["small", "base"])
    b.add_argument("--variants", nargs="+", help="subset of: init every_step additive "
                   "additive+feed general general+feed (the reference needs general+feed)")
    b.add_argument("--quick", action="store_true", help="fewer steps and sentences")
    b.add_argument("--out", default="benchmarks/results")
    b.add_argument("--tag", default=None, type=_tag,
                   help="appended to the result's file name (speed-<date>[-device]-TAG.json), "
                        "so a second run on one day keeps the first")
    b.add_argument("--device", default="cpu",
                   help="cpu (the default: the whole benchmark), or cuda / cuda:N (speed, "
                        "utilisation and bf16 on the GPU; no int8 or reference)")
    b.add_argument("--batch-tokens", type=int, default=4000, help="training batch size")
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
    sv.add_argument("--quantize", choices=["int8"], help="dynamic int8 quantization (CPU)")
    _device_arg(sv)
    sv.set_defaults(func=cmd_serve)

    ch = sub.add_parser("chat", help="talk to a dialogue model (reads lines until EOF or /quit)")
    ch.add_argument("--model", required=True, nargs="+")
    ch.add_argument("--beam", type=int, help="beam size (default: the model's)")
    ch.add_argument("--sample", action="store_true", help="sample replies instead of searching")
    ch.add_argument("--temperature", type=float, default=0.8)
    ch.add_argument("--top-k", type=int, default=20)
    ch.add_argument("--seed", type=int, help="seed for --sample (repeatable replies)")
    ch.add_argument("--max-len-b", type=int,
                    help="longest reply = max_len_a * message length + this (default: model's)")
    _device_arg(ch)
    ch.set_defaults(func=cmd_chat)

    pa = sub.add_parser("plot-attention", help="draw a model's attention for one input (PNG)")
    pa.add_argument("--model", required=True, nargs="+")
    pa.add_argument("--input", required=True, help="the text to translate")
    pa.add_argument("--beam", type=int)
    pa.add_argument("--out", required=True, help="PNG file to write")
    _device_arg(pa)
    pa.set_defaults(func=cmd_plot_attention)

    pr = sub.add_parser("plot-run", help="draw a run's loss and dev-metric curves (PNG)")
    pr.add_argument("run", help="run folder (holds scalars.csv / valid.jsonl)")
    pr.add_argument("--out", required=True, help="PNG file to write")
    pr.set_defaults(func=cmd_plot_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    if args.command in ("translate", "evaluate", "bench", "serve", "chat", "plot-attention"):
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
