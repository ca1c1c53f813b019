"""tandem: RNN encoder-decoder (seq2seq) models that train and run fast on ordinary machines.

    import tandem
    run_dir = tandem.train("configs/reverse.yaml")
    tandem.load(run_dir / "best.pt").translate(["abc"], beam=5)
"""

from __future__ import annotations

from typing import Any

from tandem import train  # callable: train(config, overrides, resume, overwrite) -> run folder
from tandem.config import Config, load_config
from tandem.errors import CheckpointError, ConfigError, DataError, TandemError

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import torch-heavy parts on first use, so `tandem --help` and config checks start fast."""
    if name in ("load", "Translator", "Result"):
        from tandem.decode import translator

        return getattr(translator, name)
    raise AttributeError(f"module 'tandem' has no attribute {name!r}")


__all__ = ["CheckpointError", "Config", "ConfigError", "DataError", "Result", "TandemError",
           "Translator", "load", "load_config", "train"]
