"""What a structure is: the two classes every module of `tandem.structures` subclasses.

`Structure` is what training drives (the Trainer's loop, checkpoints, signals, NaN handling,
scalars and early stopping are one implementation for every structure): how the data is
read, the fields made and stored, the model built, one epoch's batches, the model called on
a batch, its loss and the validation metrics. `LoadedModel` is a trained model ready to use
(what `tandem.load` returns): the device it runs on, its inference kernels, prediction for a
user's inputs, evaluation with the metrics training validates with, and the request and
response of the one server (`request_model`, `plan`, `run`, `answer`), which batches
concurrent requests for every structure alike.

A structure module defines one subclass of each, names them `STRUCTURE` and `LOADED`, and
`tandem.structures` finds it; `docs/architecture.md` ("adding a structure") walks through one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from tandem.config import STRUCTURE_METRICS, Config, DecodeConfig, default_valid_metric
from tandem.cpu import module_device, resolve_device
from tandem.model import fast


@dataclass
class Filler:
    """A rank's stand-in batch when its share of a global batch is empty (a global batch of
    fewer examples than ranks): `batch` is trained with weight 0, so the rank still joins the
    step's gradient all-reduce."""

    batch: Any


def valid_metric(cfg: Config) -> str:
    """The metric that picks best.pt, early stopping and plateau: `train.valid_metric` (which
    `from_dict` sets to the structure's default when the user did not set it), or for a
    Config built in Python whose valid_metric is not one of its structure's, that default."""
    if cfg.train.valid_metric in STRUCTURE_METRICS[cfg.model.structure]:
        return cfg.train.valid_metric
    return default_valid_metric(cfg.model.structure)


def training_kernels(model: torch.nn.Module, cfg: Config, device: torch.device) -> fast.Plan:
    """Put the model's kernels for training on this device and precision (a validation that
    decodes switches them to inference ones; this switches back)."""
    precision = "bf16" if cfg.train.bf16 else "fp32"
    return fast.prepare(model, device, "train", precision, cfg.model.fast_kernels)


def floats(result: dict[str, Any], keys: tuple[str, ...]) -> dict[str, float]:
    """The scalar metrics of an evaluation result (validation logs numbers only)."""
    return {k: float(result[k]) for k in keys if k in result}


class Structure:
    """What training does for one `model.structure`; one subclass per structure module.

    Built from the config, the loaded data (`load(cfg)`) and the training device; holds
    `fields` (an object with `state()`, stored in checkpoints as `fields`) and `has_dev`
    (whether there is a dev set to validate on). Building touches no files and draws no
    random numbers (the initial weights come from torch's global generator in
    `build_model`).

    The class methods are what loading a checkpoint needs without any data: `fields_from_state`
    and `build` (the model of a config and fields)."""

    name: ClassVar[str]

    def __init__(self, cfg: Config, data: Any, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        self.fields: Any = None
        self.has_dev = False

    @classmethod
    def for_config(cls, cfg: Config) -> type[Structure]:
        """The class that trains `cfg` (a structure with variants, such as a streamed one for
        data.streaming, overrides this)."""
        if cfg.data.streaming:
            from tandem.errors import ConfigError

            raise ConfigError(f"data.streaming: true reads a training file lazily, which "
                              f"model.structure = {cls.name} does not: it reads its data in "
                              "memory (set data.streaming: false)")
        return cls

    @staticmethod
    def load(cfg: Config) -> Any:
        """Read and encode the data `data.*` names (the `data` argument of the constructor)."""
        raise NotImplementedError

    @classmethod
    def fields_from_state(cls, state: dict[str, Any]) -> Any:
        """The fields a checkpoint's `fields` entry describes."""
        raise NotImplementedError

    @classmethod
    def build(cls, cfg: Config, fields: Any) -> torch.nn.Module:
        """A freshly initialised model of `cfg.model` over `fields` (on the CPU; weights from
        torch's global generator)."""
        raise NotImplementedError

    @classmethod
    def export_graphs(cls, model: torch.nn.Module, fields: Any, cfg: Config, folder: Path
                      ) -> dict[str, Any]:
        """Write `model` (built by `build`, textbook kernels) as ONNX graphs into `folder`;
        -> the manifest's structure-specific part: at least `graphs` ({name: {"file",
        "inputs", "outputs"}}). `tandem.runtime` reads them back."""
        from tandem.errors import ConfigError

        raise ConfigError(f"tandem export: a {cls.name} model cannot be exported yet")

    def build_model(self) -> torch.nn.Module:
        """A freshly initialised model for this data (on the CPU)."""
        return self.build(self.cfg, self.fields)

    def epoch(self, rng: random.Random) -> list:
        """The plan of one training epoch: a list of items, one per batch, in order, drawn
        from `rng` (the Trainer keeps `rng`'s state before the draw, so a resume inside an
        epoch redraws the same plan)."""
        raise NotImplementedError

    def epoch_items(self, rng: random.Random, skip: int) -> tuple[int | None, Iterator[Any]]:
        """(the epoch's number of batches, or None when not known in advance; its plan items
        after the first `skip`), the plan drawn from `rng` as `epoch` says. A streamed
        corpus yields its items as it reads them, and resumes from its saved position."""
        order = self.epoch(rng)
        return len(order), iter(order[skip:])

    def batch(self, item: Any) -> Any:
        """The batch of one plan item (on the CPU; `loss` moves it)."""
        raise NotImplementedError

    def share(self, item: Any, rank: int, world: int) -> tuple[Any, bool]:
        """Rank `rank`'s part of one plan item (a global batch) under torchrun, as a plan
        item `batch` takes, and whether the part is empty (then it is a stand-in that the
        trainer weights 0). Plan items here are index lists: every world-th example from the
        rank-th on, which balances lengths across ranks."""
        part = item[rank::world]
        return (part, False) if part else (item[:1], True)

    def check_ranks(self, world: int) -> None:
        """Refuse (ConfigError) a number of ranks this structure's batches cannot be shared
        by."""

    def loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, int]:
        """(summed loss, number of scored targets) of `batch` under `model` (in train mode),
        at update `step` (0-based; scheduled sampling depends on it). `train.label_smoothing`
        applies."""
        raise NotImplementedError

    def step_done(self, ok: bool) -> None:
        """Called after each `loss`: `ok` is False when the update was skipped (the loss or
        its gradient was not finite)."""

    def batch_tokens(self, batch: Any, n: int) -> int:
        """Tokens the model read and predicted in `batch` (`n` scored targets), for tok/s."""
        return n

    def dev_loss(self, model: torch.nn.Module) -> float:
        """Mean loss per scored target on the dev set (no label smoothing)."""
        return self.validate(model).get("loss", 0.0)

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """The dev metrics (empty without a dev set); includes `loss`."""
        raise NotImplementedError

    def resume_state(self, ranks: Any = None) -> dict[str, Any]:
        """Checkpoint entries (plain values and tensors) a resume needs besides weights,
        optimizer and random states; stored only in resumable checkpoints. `ranks`: the
        trainer's `tandem.train.distributed.Ranks` (None: one process); under torchrun a
        collective (every rank calls it), whose result holds all ranks' state."""
        return {}

    def restore(self, ckpt: dict[str, Any], ranks: Any = None) -> None:
        """Take back what `resume_state` stored, from a checkpoint being resumed (this rank's
        part of it, whatever the number of ranks that wrote it)."""

    def describe(self) -> str:
        """The sizes logged when training starts (vocabularies, labels)."""
        return ""


class LoadedModel:
    """A trained model with its config and fields, ready to use: `tandem.load` returns the
    subclass of the checkpoint's structure. The model is in eval mode with its inference
    kernels prepared once for its device.

    What the one server and the CLI ask of every structure: `verbs` (the commands that apply:
    translate, predict, generate; evaluate and serve apply to all), `endpoint` (the POST path
    of its requests), `page` (its web page under tandem/web), `info()` (what /v1/model
    answers), `request_model(limits)` (the pydantic body of a request, every limit in its
    schema), `plan(request, limits)` (the items a request adds to a batch and the key of
    options that must be equal within a batch), `run(items, key)` (one batch of items from
    any number of requests, on the worker thread) and `answer(request, outputs, ms)` (the
    response body)."""

    structure: ClassVar[str] = ""
    verbs: ClassVar[tuple[str, ...]] = ()
    endpoint: ClassVar[str] = ""
    page: ClassVar[str] = "structures.html"
    reads_features: ClassVar[bool] = False
    """Whether evaluation takes a .npy matrix of feature vectors beside its text file."""

    def __init__(self, model: torch.nn.Module, fields: Any, config: Config,
                 train_state: dict | None = None) -> None:
        self.model = model.eval()
        self.fields = fields
        self.config = config
        self.train_state: dict = train_state or {}
        self._prepare()

    @classmethod
    def from_checkpoints(cls, paths: tuple[str | Path, ...], first: dict,
                         structure: type[Structure]) -> LoadedModel:
        """The model of one checkpoint (`first`: its contents); structures that combine
        several checkpoints (seq2seq ensembles) override this."""
        from tandem import checkpoint
        from tandem.config import from_dict
        from tandem.errors import CheckpointError

        if len(paths) > 1:
            raise CheckpointError(f"{paths[0]}: a {cls.structure} model; ensembles are for "
                                  "seq2seq models, give one checkpoint")
        with checkpoint.consistent(paths[0]):
            cfg = from_dict(first["config"])
            fields = structure.fields_from_state(first["fields"])
            model = structure.build(cfg, fields)
            model.load_state_dict(first["model"])
        return cls(model, fields, cfg, checkpoint.training_summary(first))

    @property
    def device(self) -> torch.device:
        """Where the model runs; inputs are moved there."""
        return module_device(self.model)

    def to(self, device: str | torch.device = "auto") -> LoadedModel:
        """Run on `device`: auto (a CUDA GPU when there is one), cpu, cuda or cuda:N."""
        self.model = self.model.to(resolve_device(device))
        self._prepare()
        return self

    def _prepare(self) -> None:
        """The model's inference kernels for its device (`tandem.model.fast`)."""
        fast.prepare(self.model, self.device, "infer", "fp32", self.config.model.fast_kernels)

    @property
    def labels(self) -> list[str]:
        """The labels (classify, generate from labels) or tags (tag) the model knows."""
        return list(getattr(self.fields, "labels", []))

    def _batch_tokens(self) -> int:
        return max(self.config.train.batch_tokens, 1000)

    @property
    def decode_defaults(self) -> DecodeConfig:
        """The decoding options requests start from (the model's decode section)."""
        return self.config.decode

    def evaluate(self, path: str | Path | None = None, features: str | Path | None = None,
                 split: str = "test") -> dict[str, Any]:
        """Score a file in the structure's format (or `split` of the model's config when
        `path` is None) with the metrics training validates with, plus `data` (what was
        read)."""
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """What /v1/model answers: the structure, its shape, size, training and device (the
        structure adds its vocabularies and labels)."""
        from dataclasses import asdict

        cfg = self.config
        source = {k: v for k, v in (("task", cfg.data.task), ("corpus", cfg.data.corpus),
                                    ("train", cfg.data.train)) if v is not None}
        return {"structure": self.structure, "verbs": list(self.verbs),
                "endpoint": self.endpoint, "model": asdict(cfg.model),
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "trained_on": source, "src_kind": cfg.data.src_kind,
                "training": {**self.train_state, "valid_metric": cfg.train.valid_metric},
                "device": str(self.device)}

    # --- serving: one batch of many requests' items ----------------------------------------
    def request_model(self, limits: Any) -> type:
        """The pydantic model of a request body under the server's `limits`
        (`tandem.requests.ServeOptions`)."""
        raise NotImplementedError

    def plan(self, request: Any, limits: Any) -> tuple[list[Any], Any]:
        """(the items `request` adds to a batch, the hashable key of the options they run
        with); a request over a limit raises `tandem.requests.LimitError`."""
        raise NotImplementedError

    def run(self, items: list[Any], key: Any) -> list[Any]:
        """One output per item: the items of one or more requests with equal keys."""
        raise NotImplementedError

    def answer(self, request: Any, key: Any, outputs: list[Any], ms: float) -> dict[str, Any]:
        """The response body of `request` (planned with `key`) from its items' outputs."""
        raise NotImplementedError

    # --- the verbs: what the command line asks of a model ---------------------------------
    # "translate": the model is a Translator (options, set_defaults, rescore_with, quantize,
    # translate_full, stream). "predict" and "generate": the methods below.

    item: ClassVar[str] = "input"
    """predict: what one input line holds, for messages ("text to classify")."""
    @property
    def reads_frames(self) -> bool:
        """Whether inputs are series of frames (data.src_kind: frames), read from a file
        (`predict_file`) rather than lines of text."""
        return self.config.data.src_kind == "frames"

    continues: ClassVar[bool] = False
    """generate: whether each output continues its input (printed after it) rather than being
    written from it (printed beside it)."""
    unused_options: ClassVar[frozenset[str]] = frozenset()
    """generate: the DecodeConfig fields its searches never read (refused as flags)."""

    def check_line(self, line: str) -> str | None:
        """predict: why one input line cannot be predicted, or None."""
        return None

    def predict_lines(self, lines: list[str], topk: int = 1) -> list[dict[str, Any]]:
        """predict: one record per line: {"input", "labels": [{"label", "prob"}]} or
        {"input", "words", "tags"} (how `tandem predict` prints it)."""
        raise NotImplementedError

    def predict_file(self, path: str, topk: int = 1) -> list[dict[str, Any]]:
        """predict, a model over frames: one record per series of the file (.ts, .npz or
        .npy), as `predict_lines` gives them."""
        raise NotImplementedError

    def cli_inputs(self, prompts: list[str] | None, labels: list[str] | None,
                   features: str | None) -> tuple[Any, list[str]]:
        """generate: `tandem generate`'s --prompt / --label / --features as (the items
        `generate_from` takes, what is shown for each); the ones it cannot take refused."""
        raise NotImplementedError

    def generate_from(self, items: Any, n: int = 1, max_len: int | None = None,
                      seed: int | None = None, **options: Any) -> list[str]:
        """generate: `n` outputs for each of the items `cli_inputs` gave, in order."""
        raise NotImplementedError

    def set_defaults(self, **overrides: Any) -> LoadedModel:
        """generate, translate: change the decoding options requests start from."""
        raise NotImplementedError
