"""tandem: RNN encoder-decoder (seq2seq) models, and the other RNN structures on the same
parts (classify, tag, language model, generate), that train and run fast on ordinary machines.

    import tandem
    run_dir = tandem.train("configs/reverse.yaml")
    tandem.load(run_dir / "best.pt").translate(["abc"], beam=5)
    tandem.load("runs/sst2/best.pt").predict(["a gorgeous film"])  # a classifier
    tandem.g2p(["PHOENIX", "tandem"])  # ['F IY1 N IH0 K S', 'T AE1 N D AH0 M']
    tandem.g2p_text("I read it.")  # ['AY1 | R EH1 D | IH1 T | .']: homographs in context
"""

from __future__ import annotations

from typing import Any

from tandem import train  # callable: train(config, overrides, resume, overwrite) -> run folder
from tandem.config import Config, load_config
from tandem.errors import CheckpointError, ConfigError, DataError, TandemError

__version__ = "0.1.0"


def load(*paths: Any, device: str = "auto", first: dict | None = None) -> Any:
    """A trained model: an export folder (`tandem export`) in the lean runtime, without
    importing PyTorch even where it is installed; a checkpoint (several: a seq2seq ensemble)
    as its structure's LoadedModel on `device` (`tandem.structures.load`)."""
    from tandem import runtime

    if len(paths) == 1 and str(device) in ("auto", "cpu") and runtime.is_export(paths[0]):
        return runtime.load(paths[0])
    from tandem import structures

    return structures.load(*paths, device=device, first=first)


def __getattr__(name: str) -> Any:
    """Import torch-heavy parts on first use, so `tandem --help` and config checks start fast."""
    if name in ("Translator", "Result"):
        from tandem.structures import translator

        return getattr(translator, name)
    if name == "LoadedModel":
        from tandem import structures

        return structures.LoadedModel
    if name.endswith("Predictor"):  # each structure's loaded model, by its class name
        from tandem import structures

        for s in structures.names():
            if structures.loaded_class(s).__name__ == name:
                return structures.loaded_class(s)
    if name in ("g2p", "G2P"):
        from tandem import pronounce as g2p

        return getattr(g2p, name)
    if name in ("g2p_text", "TextG2P"):
        from tandem.pronounce import sentences

        return getattr(sentences, name)
    raise AttributeError(f"module 'tandem' has no attribute {name!r}")


__all__ = ["CheckpointError", "ClassifierPredictor", "Config", "ConfigError", "DataError",
           "G2P", "GeneratorPredictor", "LMPredictor", "LoadedModel", "Result",
           "TaggerPredictor", "TandemError", "TextG2P", "Translator", "g2p", "g2p_text", "load",
           "load_config", "train"]
