"""tandem: RNN encoder-decoder (seq2seq) models that train and run fast on ordinary machines.

    import tandem
    run_dir = tandem.train("configs/reverse.yaml")
    tandem.load(run_dir / "best.pt").translate(["abc"], beam=5)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tandem.config import Config, load_config
from tandem.errors import CheckpointError, ConfigError, DataError, TandemError

__version__ = "0.1.0"


def train(config: str | Path | Config, overrides: list[str] | None = None,
          resume: bool = False, overwrite: bool = False) -> Path:
    """Train from a YAML path or a Config; returns the run folder holding best.pt. A folder
    that already holds a run is refused unless `resume` (continue it) or `overwrite`."""
    from tandem.train.trainer import train as _train

    cfg = config if isinstance(config, Config) else load_config(config, overrides)
    return _train(cfg, resume=resume, overwrite=overwrite)


def __getattr__(name: str) -> Any:
    """Import torch-heavy parts on first use, so `tandem --help` and config checks start fast."""
    if name in ("load", "Translator", "Result"):
        from tandem.decode import translator

        return getattr(translator, name)
    raise AttributeError(f"module 'tandem' has no attribute {name!r}")


__all__ = ["CheckpointError", "Config", "ConfigError", "DataError", "Result", "TandemError",
           "Translator", "load", "load_config", "train"]
