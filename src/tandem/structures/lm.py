"""lm: synchronous many-to-many predicting the next token (`LanguageModel`: one
unidirectional RNN), trained with truncated backpropagation through time over one stream of
text, line breaks kept as the token NEWLINE.

Data: plain text (data.train, data.dev or the last data.lm_dev_fraction, data.test) or the
built-in corpus tinyshakespeare. Loss: next-token cross-entropy; metrics: loss (nats per
token), perplexity and bits per character. Prediction: text continued from a prompt (searched
with seq2seq's searches through `init_state` / `decode_step`: sampling by default, greedy or
beam search when asked) and the model's probability of a text.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tandem import metrics
from tandem.config import Config, DataConfig
from tandem.cpu import autocast
from tandem.data import readers, tokenizers
from tandem.data.corpora import corpus_dir
from tandem.data.fields import StructFields
from tandem.data.tokenizers import CharTokenizer, Tokenizer
from tandem.data.vocab import Vocab
from tandem.errors import ConfigError, DataError
from tandem.model.lm import LanguageModel, detach_hidden
from tandem.model.loss import token_nll
from tandem.structures.base import Structure, floats
from tandem.structures.common import StructData, Tensors, ce_sum, log
from tandem.structures.generating import Generating
from tandem.verbs import NEWLINE, LMVerbs

NAME = "lm"
"""The token of a line break in lm streams (word and sentencepiece tokenizers read line by
line; the char tokenizer keeps every character, '\\n' included)."""


def stream_tokens(tok: Tokenizer, text: str) -> list[str]:
    """The tokens of a running text for a language model, line breaks kept as NEWLINE. The
    char tokenizer keeps every character as it is (NFC, optionally lowercased; runs of spaces
    are not collapsed, so the stream has exactly one token per character); the others tokenize
    each line."""
    if isinstance(tok, CharTokenizer):
        text = unicodedata.normalize("NFC", text)
        text = text.lower() if tok.lowercase else text
        table = {" ": tok.SPACE, tok.SPACE: tok.LITERAL_SPACE_MARK}
        return [table.get(c, c) for c in text]
    out: list[str] = []
    for k, line in enumerate(text.split("\n")):
        if k:
            out.append(NEWLINE)
        out.extend(tok.tokenize(line))
    return out


def stream_text(tok: Tokenizer, tokens: list[str]) -> str:
    """stream_tokens' inverse: tokens -> text, each NEWLINE a line break."""
    lines: list[str] = []
    cur: list[str] = []
    for t in tokens:
        if t == NEWLINE:
            lines.append(tok.detokenize(cur))
            cur = []
        else:
            cur.append(t)
    lines.append(tok.detokenize(cur))
    return "\n".join(lines)


class LMFields(StructFields):
    """A language model's fields: text is one stream, line breaks kept as NEWLINE."""

    def tokens(self, text: str) -> list[str]:
        """Text -> tokens, line breaks kept (`stream_tokens`)."""
        if self.tok is None:
            raise DataError("lm fields have no tokenizer")
        return stream_tokens(self.tok, text)

    def decode(self, ids: list[int]) -> str:
        """Token ids -> text, NEWLINE tokens as line breaks."""
        return stream_text(self.tok, self.vocab.decode(ids))


def lm_texts(d: DataConfig) -> tuple[str, str, str]:
    """lm: the train / dev / test texts (test "" when there is none)."""
    if d.corpus == "tinyshakespeare":
        path = corpus_dir(d) / "input.txt"
        if not path.is_file():
            raise DataError(f"{path}: tiny Shakespeare not found; set data.corpus_dir to the "
                            "folder holding input.txt")
        train_text, dev_text = readers.split_text(readers.read_text(path, d.on_bad_line)[0],
                                                  d.lm_dev_fraction)
        return train_text, dev_text, ""
    assert d.train is not None
    text = readers.read_text(d.train, d.on_bad_line)[0]
    if d.dev is not None:
        train_text, dev_text = text, readers.read_text(d.dev, d.on_bad_line)[0]
    else:
        train_text, dev_text = readers.split_text(text, d.lm_dev_fraction)
    return train_text, dev_text, readers.read_text(d.test, d.on_bad_line)[0] if d.test else ""


def load(cfg: Config) -> StructData:
    """Read the texts, build the tokenizer and vocabulary on the training text and encode
    every split as one token stream."""
    d = cfg.data
    train_text, dev_text, test_text = lm_texts(d)
    tok = tokenizers.build(d.src_tokenizer, train_text.split("\n"), d.lowercase,
                           d.sp_vocab_size, d.sp_model_type)
    train_tokens = stream_tokens(tok, train_text)
    vocab = Vocab.build([train_tokens], d.src_min_freq, d.src_max_vocab)
    fields = LMFields(NAME, vocab, tok)
    train = vocab.encode(train_tokens)
    if len(train) < 2:
        raise DataError(f"{d.train or d.corpus}: the training text has {len(train)} tokens; a "
                        "language model needs at least 2")
    dev, test = fields.encode_text(dev_text) if dev_text else [], \
        fields.encode_text(test_text) if test_text else []
    log.info("data: lm, %d / %d / %d tokens, vocabulary %d", len(train), len(dev), len(test),
             len(vocab))
    return StructData(NAME, fields, train, dev, test,
                      {"train": train_text, "dev": dev_text, "test": test_text})


@dataclass
class LMBatch(Tensors):
    """inputs (B, T) and targets (B, T) long, targets[b, t] the token after inputs[b, t];
    row b continues row b of the batch before (`index` - 1) without a gap, so the hidden state
    carries over. T = bptt except maybe in the last batch."""

    inputs: torch.Tensor
    targets: torch.Tensor
    index: int

    @property
    def n_tokens(self) -> int:
        """Predicted tokens (B x T)."""
        return self.targets.numel()


def stream_batches(ids: list[int], streams: int, bptt: int, offset: int = 0
                      ) -> list[LMBatch]:
    """An lm split cut into `streams` parallel contiguous streams, then into batches of `bptt`
    steps, in order: stream b is ids[offset + b*L : offset + (b+1)*L] with L = (len(ids) -
    offset - 1) // streams; batch k holds steps k*bptt .. of every stream, inputs (B, T) and
    targets (B, T) = the next tokens. So row b of batch k+1 continues row b of batch k (carry
    the hidden state), and the targets cover ids[offset+1 : offset+1 + streams*L] once each
    (fewer than `streams` tokens at the end go unused). `offset` (< len - streams) shifts
    where the cuts fall (e.g. a different one per epoch). Deterministic."""
    if streams < 1 or bptt < 1:
        raise ConfigError(f"lm batches need streams >= 1 and bptt >= 1 (got {streams}, {bptt}); "
                          "see train.batch_tokens and train.bptt")
    n = len(ids) - offset - 1
    length = n // streams
    if length < 1:
        raise DataError(f"an lm text of {len(ids)} tokens is too short for {streams} parallel "
                        f"streams (offset {offset}); lower train.batch_tokens // train.bptt")
    data = torch.tensor(ids[offset:offset + streams * length + 1], dtype=torch.long)
    x = data[:-1].view(streams, length)
    y = data[1:].view(streams, length)
    return [LMBatch(x[:, t:t + bptt].contiguous(), y[:, t:t + bptt].contiguous(), k)
            for k, t in enumerate(range(0, length, bptt))]


def forward(model: torch.nn.Module, b: LMBatch, state: Any = None) -> tuple[torch.Tensor, Any]:
    """The model on a batch from `state` (None: zeros): (logits (B, T, V), the last state)."""
    return model(b.inputs, state)


def evaluation_data(cfg: Config, fields: StructFields, path: str | Path | None,
                    split: str) -> tuple[list[int], str, str]:
    """The token ids of `path` (plain text) or of `split` of the model's config (its dev
    text when a test split is asked and the config has none, as tiny Shakespeare's customary
    split), the text, and what was read."""
    d = cfg.data
    what = str(path) if path is not None else f"the {split} split of the model's config"
    if path is not None:
        text = readers.read_text(path, d.on_bad_line)[0]
    else:
        texts = lm_texts(d)
        text = texts[("train", "dev", "test").index(split)]
        if not text and split == "test":
            text, what = texts[1], "the dev split of the model's config (it has no test text)"
    if not text:
        raise DataError(f"{what}: no text to evaluate")
    return fields.encode_text(text), text, what


@torch.no_grad()
def evaluate(model: torch.nn.Module, ids: list[int], streams: int, bptt: int,
             chars_per_token: float | None = None, device: torch.device | None = None,
             bf16: bool = False) -> dict[str, float]:
    """A language model on one token stream, cut into at most `streams` parallel streams
    (fewer when the text is short) of `bptt`-step batches with the hidden state carried from
    batch to batch: `loss` (cross-entropy, nats per token), `ppl`, `tokens` (predicted) and,
    with `chars_per_token` (1 for character tokens), `bpc` (bits per character)."""
    device = device or torch.device("cpu")
    model.eval()
    streams = max(1, min(streams, (len(ids) - 1) // bptt))
    nll, count, state = 0.0, 0, None
    for b in stream_batches(ids, streams, bptt):
        b = b.to(device)
        with autocast(bf16, device.type):
            logits, state = forward(model, b, state)
        nll += float(ce_sum(logits.reshape(-1, logits.size(-1)), b.targets.reshape(-1), -100))
        count += b.targets.numel()
    chars = None if chars_per_token is None else round(count * chars_per_token)
    return {**metrics.lm_scores(nll, count, chars), "tokens": float(count)}


def _to_device(state: Any, device: torch.device) -> Any:
    """A hidden state from a checkpoint (None, a tensor or an LSTM's (h, c)) on `device`."""
    if isinstance(state, (list, tuple)):
        return tuple(s.to(device) for s in state)
    return None if state is None else state.to(device)


class LM(Structure):
    """Synchronous many-to-many predicting the next token (LanguageModel: one unidirectional
    RNN), trained with truncated backpropagation through time: the training text is cut into
    `train.batch_tokens // train.bptt` parallel contiguous streams (`stream_batches`; each
    epoch starts the cuts at an offset below train.bptt drawn from the Trainer's rng), a
    batch is the next `train.bptt` tokens of every stream, and the hidden state is carried
    (detached) from one batch to the next, reset at each epoch's start and after a skipped
    (non-finite) step. Resumable checkpoints store that state (`lm_state`), so a resume is
    exact. Validation: dev cross-entropy, perplexity and bits per character over the dev text
    as streams with the state carried. The checkpoint's `fields` is `StructFields.state()`."""

    name = NAME
    load = staticmethod(load)

    @classmethod
    def export_graphs(cls, model: torch.nn.Module, fields: StructFields, cfg: Config,
                      folder: Path) -> dict[str, Any]:
        """The `step` graph, which also reads prompts (`tandem.model.onnx.lm_graphs`)."""
        from tandem.model.onnx import lm_graphs

        return lm_graphs(model, folder)

    def __init__(self, cfg: Config, data: StructData, device: torch.device) -> None:
        super().__init__(cfg, data, device)
        self.data = data
        self.fields = data.fields
        self.has_dev = len(data.dev) > 1  # a next-token target needs two tokens
        self.bptt = cfg.train.bptt
        self.streams = max(1, cfg.train.batch_tokens // cfg.train.bptt)
        self._cut: tuple[int, list] | None = None  # (offset, its batches), the current epoch's
        self.carry: Any = None  # the hidden state after the last trained batch (detached)
        self._pending: Any = None

    @classmethod
    def fields_from_state(cls, state: dict[str, Any]) -> LMFields:
        """`LMFields.from_state`."""
        return LMFields.from_state(state)

    @classmethod
    def build(cls, cfg: Config, fields: StructFields) -> torch.nn.Module:
        """A LanguageModel over the vocabulary."""
        return LanguageModel(cfg.model, len(fields.vocab))

    def _batches(self, offset: int) -> list:
        if self._cut is None or self._cut[0] != offset:
            self._cut = (offset, stream_batches(self.data.train, self.streams, self.bptt,
                                                   offset))
        return self._cut[1]

    def epoch(self, rng: random.Random) -> list[tuple[int, int]]:
        """(offset, batch number) of each batch of one pass over the training text."""
        room = len(self.data.train) - 1 - self.streams * self.bptt  # keep a full first batch
        offset = rng.randrange(min(self.bptt, room)) if room > 1 else 0
        return [(offset, k) for k in range(len(self._batches(offset)))]

    def batch(self, item: tuple) -> Any:
        """The LMBatch of that cut (inputs and targets (B, T)); an item from `share` also
        names the rows (streams) lo..hi of this rank."""
        offset, k, *rows = item
        b = self._batches(offset)[k]
        if not rows:
            return b
        lo, hi = rows
        return LMBatch(b.inputs[lo:hi], b.targets[lo:hi], b.index)

    def rows(self, rank: int, world: int) -> tuple[int, int]:
        """The streams rank `rank` of `world` trains: contiguous, as even as can be (so the
        gathered hidden states of the ranks, in rank order, are the global batch's)."""
        base, extra = divmod(self.streams, world)
        lo = rank * base + min(rank, extra)
        return lo, lo + base + (rank < extra)

    def share(self, item: Any, rank: int, world: int) -> tuple[Any, bool]:
        """This rank's streams of the batch."""
        return (*item, *self.rows(rank, world)), False

    def check_ranks(self, world: int) -> None:
        """Every rank needs a stream of its own."""
        if self.streams < world:
            raise ConfigError(f"train.batch_tokens // train.bptt = {self.streams} parallel "
                              f"streams cannot be shared by {world} ranks; raise "
                              f"train.batch_tokens to at least {world * self.bptt}")

    def loss(self, model: torch.nn.Module, batch: Any, step: int) -> tuple[torch.Tensor, int]:
        """Summed next-token cross-entropy, starting from the carried state (none at an
        epoch's first batch); n = B x T."""
        t = self.cfg.train
        batch = batch.to(self.device)
        start = None if batch.index == 0 else self.carry
        with autocast(t.bf16, self.device.type):
            logits, state = forward(model, batch, start)
        self._pending = detach_hidden(state)
        return token_nll(logits, batch.targets, t.label_smoothing)

    def step_done(self, ok: bool) -> None:
        """Carry the new state, or after a skipped step none (it may hold NaNs)."""
        self.carry = self._pending if ok else None
        self._pending = None

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        """Dev loss (nats per token), perplexity and bits per character."""
        if not self.has_dev:
            return {}
        res = evaluate(model, self.data.dev, self.streams, self.bptt,
                          self.chars_per_token(), self.device, self.cfg.train.bf16)
        return floats(res, ("loss", "ppl", "bpc"))

    def chars_per_token(self) -> float:
        """Characters per dev token: 1 for character tokens, else the dev text's characters
        over its tokens (a line break counts one)."""
        tok = self.fields.tok
        if tok is not None and tok.kind == "char":
            return 1.0
        text = self.data.items.get("dev") or ""
        return len(text) / max(len(self.data.dev), 1)

    def resume_state(self, ranks: Any = None) -> dict[str, Any]:
        """`lm_state`: the carried hidden state of all streams (None at an epoch start; under
        torchrun the ranks' rows, gathered in rank order)."""
        if ranks is None or ranks.world == 1:
            return {"lm_state": self.carry}
        parts = ranks.gather(_to_device(self.carry, torch.device("cpu")))
        if any(p is None for p in parts):
            return {"lm_state": None}
        if isinstance(parts[0], tuple):  # an LSTM's (h, c), each (layers, rows, hidden)
            return {"lm_state": tuple(torch.cat([p[i] for p in parts], 1)
                                      for i in range(len(parts[0])))}
        return {"lm_state": torch.cat(parts, 1)}

    def restore(self, ckpt: dict[str, Any], ranks: Any = None) -> None:
        """Carry the checkpoint's `lm_state` on: this rank's rows of it."""
        state = ckpt.get("lm_state")
        if state is not None and ranks is not None and ranks.world > 1:
            lo, hi = self.rows(ranks.rank, ranks.world)
            state = (tuple(s[:, lo:hi] for s in state) if isinstance(state, (list, tuple))
                     else state[:, lo:hi])
        self.carry = _to_device(state, self.device)

    def describe(self) -> str:
        """Vocabulary size, streams and bptt."""
        return (f"vocab {len(self.fields.vocab)}; {self.streams} streams x bptt {self.bptt}, "
                f"{len(self.data.train)} training tokens")


class LMPredictor(LMVerbs, Generating):
    """A trained language model: text continued from a prompt (`LMVerbs`), and the model's
    probability of a text.

        tandem.load("runs/shakespeare/best.pt").generate(["ROMEO:"], max_len=200, seed=1)
    """

    structure = NAME

    @torch.no_grad()
    def score(self, text: str) -> dict[str, float]:
        """The model's cross-entropy of a text (nats per token, the first token predicted
        from a line break), perplexity and, for a character model, bits per character."""
        ids = self._prompt_ids("") + self.fields.encode_text(text)
        if len(ids) < 2:
            raise DataError("score: the text has no tokens")
        x = torch.tensor([ids], device=self.device)
        logp = self.model.forced_log_probs(x[:, :-1])
        nll = -float(logp[0].gather(1, x[0, 1:].unsqueeze(1)).sum())
        count = len(ids) - 1
        chars = count if self.fields.tok is not None and self.fields.tok.kind == "char" else None
        return {**metrics.lm_scores(nll, count, chars), "tokens": count}

    def evaluate(self, path=None, features=None, split="test") -> dict[str, Any]:
        """loss (nats per token), ppl and, for character tokens, bpc, over the text in
        contiguous streams with the hidden state carried (as training validates)."""
        if features is not None:
            raise DataError("--features is for generators conditioned on feature vectors; "
                            "a language model reads text")
        ids, text, what = evaluation_data(self.config, self.fields, path, split)
        cfg = self.config
        streams = max(1, cfg.train.batch_tokens // cfg.train.bptt)
        res = evaluate(self.model, ids, streams, cfg.train.bptt,
                          len(text) / max(len(ids), 1), self.device)
        return {"data": what, **res}


STRUCTURE = LM
LOADED = LMPredictor
