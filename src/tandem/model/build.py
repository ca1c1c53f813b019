"""The model of `model.structure`, built from the model config and the data's sizes.

| structure | classic structure                     | model                   |
|-----------|---------------------------------------|-------------------------|
| seq2seq   | many-to-many, different lengths       | `Seq2Seq`               |
| classify  | many-to-one (one-to-one: one step in) | `Classifier`            |
| tag       | synchronous many-to-many              | `Tagger`                |
| lm        | synchronous many-to-many (next token) | `LanguageModel`         |
| generate  | one-to-many                           | `ConditionalGenerator`  |

All five are compositions of the same parts (Encoder, Bridge, Decoder, Attention), so
`tandem.model.fast.prepare` gives each its kernels.
"""

from __future__ import annotations

from torch import nn

from tandem.config import ModelConfig
from tandem.errors import ConfigError
from tandem.model.classifier import Classifier
from tandem.model.generator import ConditionalGenerator
from tandem.model.lm import LanguageModel
from tandem.model.seq2seq import Seq2Seq
from tandem.model.tagger import Tagger

# The sizes each structure is built with (keys of `build_model`'s `sizes`).
SIZES = {
    "seq2seq": ("src_vocab", "tgt_vocab"),
    "classify": ("vocab", "labels"),
    "tag": ("vocab", "chars", "labels"),
    "lm": ("vocab",),
    "generate": ("vocab", "labels|features"),
}


def build_model(cfg: ModelConfig, sizes: dict[str, int]) -> nn.Module:
    """A freshly initialised model of `cfg.structure` (textbook kernels, on the CPU; weights
    from torch's global generator). `sizes` (see SIZES):

    - seq2seq: `src_vocab`, `tgt_vocab`;
    - classify: `vocab` (tokens), `labels` (classes);
    - tag: `vocab` (words), `chars` (characters; 0 = no character view), `labels` (tags);
    - lm: `vocab`;
    - generate: `vocab` and `labels` (conditions are labels), or `features` > 0 (the width F
      of the feature vectors; model.num_features, when not 0, must equal it).
    """
    s = cfg.structure
    need = [k for k in SIZES[s] if "|" not in k and k not in sizes]
    if need:
        raise ValueError(f"build_model: model.structure = {s} needs the sizes "
                         f"{', '.join(need)} (got {', '.join(sorted(sizes)) or 'none'})")
    if s == "seq2seq":
        return Seq2Seq(cfg, sizes["src_vocab"], sizes["tgt_vocab"])
    if s == "classify":
        return Classifier(cfg, sizes["vocab"], sizes["labels"])
    if s == "tag":
        return Tagger(cfg, sizes["vocab"], sizes["chars"], sizes["labels"])
    if s == "lm":
        return LanguageModel(cfg, sizes["vocab"])
    width = int(sizes.get("features") or 0)
    if cfg.num_features and width and cfg.num_features != width:
        raise ConfigError(f"model.num_features = {cfg.num_features} is not allowed: the "
                          f"feature vectors have {width} values")
    width = width or cfg.num_features
    if width:
        return ConditionalGenerator(cfg, width, sizes["vocab"], features=True)
    if "labels" not in sizes:
        raise ValueError("build_model: model.structure = generate needs the size labels or "
                         "features")
    return ConditionalGenerator(cfg, sizes["labels"], sizes["vocab"])
