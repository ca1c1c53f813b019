"""The models the commands load from --model (with --device, --quantize, --rescore), and the
checks that the model does the work a command asks of it (`LoadedModel.verbs`)."""

from __future__ import annotations

import argparse

from tandem.cli.args import decode_overrides
from tandem.errors import ConfigError


def load_model(a: argparse.Namespace):
    """The model --model names, of any structure (several paths: an ensemble, where the
    structure has them), on --device; a model that translates is reranked with --rescore and
    quantized when --quantize asks for it (int8 runs on the CPU, so --device auto then means
    the CPU)."""
    from tandem import runtime

    quantize = getattr(a, "quantize", None)
    if runtime.is_export(a.model[0]):  # the lean runtime: one model, CPU, as exported
        given = [f for f, v in (("--quantize", quantize),
                                ("--rescore", getattr(a, "rescore", None))) if v]
        if given or len(a.model) > 1:
            what = ", ".join(given) or "several --model paths"
            raise ConfigError(f"{what}: {a.model[0]} is an export, which runs as exported "
                              "(quantize with `tandem export --quantize int8`; ensembles and "
                              "rescoring load checkpoints)")
        if getattr(a, "device", "auto") not in ("auto", "cpu"):
            raise ConfigError(f"--device {a.device}: {a.model[0]} is an export, which runs on "
                              "the CPU (onnxruntime)")
        return runtime.load(a.model[0])
    from tandem import structures
    from tandem.cpu import resolve_device

    device = resolve_device("cpu" if quantize and a.device == "auto" else a.device, "--device")
    model = structures.load(*a.model, device=device)
    if "translate" not in model.verbs:
        return model
    rescore = getattr(a, "rescore", None)
    if rescore:
        model.rescore_with(*rescore)
    if quantize:
        for t in [model, *model.rescorers]:
            t.quantize(quantize)
    return model


def translator(a: argparse.Namespace):
    """The model --model names, refused unless it translates (`load_model`)."""
    model = load_model(a)
    need(model, "translate", "translate")
    return model


def given_flags(a: argparse.Namespace, options: frozenset[str] | None = None) -> list[str]:
    """The decoding flags given on the command line (only those of `options`, DecodeConfig
    field names, when given), then --quantize and --rescore, as the user wrote them."""
    given = [f"--{k.replace('_', '-')}" for k, v in decode_overrides(a).items()
             if v is not None and (options is None or k in options)]
    return given + [f for f, v in (("--quantize", getattr(a, "quantize", None)),
                                   ("--rescore", getattr(a, "rescore", None))) if v]


def no_decode_flags(a: argparse.Namespace, model) -> None:
    """A ConfigError naming the decoding flags given for a model that does not translate
    (they would have no effect on it): a flag is never silently ignored."""
    given = given_flags(a)
    if given:
        raise ConfigError(f"{', '.join(given)}: decoding flags of a model that translates; "
                          f"{a.model[0]} is a {model.structure} model, which they do not "
                          "change (leave them out)")


def need(model, command: str, verb: str) -> None:
    """A ConfigError when the loaded model cannot `verb` (translate, predict, generate), the
    work `command` does; it names the commands the model does serve."""
    if verb not in model.verbs:
        raise ConfigError(f"tandem {command}: --model is a {model.structure} model, which "
                          f"does not {verb}; use tandem {' or tandem '.join(model.verbs)}")


def sampling_generator(tr, seed: int | None):
    """The random numbers of sampling: seeded (repeatable outputs) when `seed` is given (a
    numpy Generator for an export in the lean runtime)."""
    if not hasattr(tr, "device"):
        import numpy as np

        return np.random.default_rng(seed) if seed is not None else None
    import torch

    return torch.Generator(device=tr.device).manual_seed(seed) if seed is not None else None
