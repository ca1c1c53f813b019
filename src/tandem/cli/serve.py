"""`tandem serve`: the HTTP API and web page over a model."""

from __future__ import annotations

import argparse

from tandem.cli.args import decode_args, decode_overrides
from tandem.cli.models import given_flags, load_model, no_decode_flags
from tandem.errors import ConfigError


def cmd_serve(a: argparse.Namespace) -> int:
    """`tandem serve`: the HTTP API over the model, its decoding flags the defaults of the
    requests that search (translate; an lm's or generator's generate)."""
    from tandem.serve import ServeOptions, serve

    opts = ServeOptions(max_body_bytes=a.max_body_bytes, max_inputs=a.max_inputs,
                        max_chars=a.max_chars, max_beam=a.max_beam, timeout_s=a.timeout,
                        batching=not a.no_batching, max_batch=a.max_batch,
                        max_wait_ms=a.max_wait_ms, max_queue=a.max_queue,
                        max_new_tokens=a.max_new_tokens)
    opts.check()  # before the model loads: a wrong flag fails at once
    model = load_model(a)
    if "translate" in model.verbs:
        # one output per input unless --nbest says otherwise (not the model's decode.nbest)
        model.set_defaults(**{**decode_overrides(a), "nbest": a.nbest or 1})
    elif "generate" in model.verbs:  # its searches read all but its unused options
        unused = given_flags(a, model.unused_options)
        if unused:
            raise ConfigError(f"{', '.join(unused)}: {a.model[0]} is a {model.structure} "
                              "model, whose generation does not use them (leave them out)")
        model.set_defaults(**decode_overrides(a))
    else:
        no_decode_flags(a, model)
    serve(model, a.host, a.port, opts)
    return 0


def _serve_parser(sub) -> None:
    sv = sub.add_parser("serve", help="HTTP API and web page over a model (FastAPI + uvicorn)")
    sv.add_argument("--model", required=True, nargs="+", help="checkpoint(s); several = ensemble")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    sv.add_argument("--port", type=int, default=8000)
    sv.add_argument("--max-body-bytes", type=int, default=65_536)
    sv.add_argument("--max-inputs", type=int, default=64, help="inputs per request")
    sv.add_argument("--max-chars", type=int, default=1_000, help="characters per input")
    sv.add_argument("--max-beam", type=int, default=16)
    sv.add_argument("--timeout", type=float, default=30.0,
                    help="seconds a request may wait for its run before a 503")
    sv.add_argument("--max-batch", type=int, default=64,
                    help="inputs run together (sentences, texts, prompts)")
    sv.add_argument("--max-wait-ms", type=float, default=5.0,
                    help="how long a request waits for others to share its batch")
    sv.add_argument("--max-queue", type=int, default=1024,
                    help="inputs waiting to be run; beyond it requests get 503 at once")
    sv.add_argument("--no-batching", action="store_true", help="run requests one by one")
    sv.add_argument("--max-new-tokens", type=int, default=1000,
                    help="lm, generate: the longest output a request may ask for")
    decode_args(sv)
    sv.set_defaults(func=cmd_serve)


PARSERS = {"serve": _serve_parser}
"""{command: the function that adds its parser to the subparsers}."""
