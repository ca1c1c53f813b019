"""Training: the loop (`trainer.py`), its loss, progress output, scalar logs and checkpoint
averaging.

`tandem.train` is both this package and the public function `tandem.train(config, ...)`:
Python sets a package's attribute `train` to its subpackage `train` once that is imported,
which would replace a plain function of that name, so the function is this package's call.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tandem.config import Config


class _TrainPackage(types.ModuleType):
    def __call__(self, config: str | Path | Config, overrides: list[str] | None = None,
                 resume: bool = False, overwrite: bool = False) -> Path:
        """Train from a YAML path or a Config (`overrides`: KEY=VALUE strings applied to a
        YAML file); returns the run folder holding best.pt. A folder that already holds a
        run is refused unless `resume` (continue it) or `overwrite`."""
        from tandem.config import Config, load_config
        from tandem.train.trainer import train

        cfg = config if isinstance(config, Config) else load_config(config, overrides)
        return train(cfg, resume=resume, overwrite=overwrite)


sys.modules[__name__].__class__ = _TrainPackage
