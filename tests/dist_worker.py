"""A torchrun worker for tests/test_distributed.py: for each config of a JSON spec, build a
Trainer (joining the process group), run K training steps on this rank's shares of the global
batches, and (rank 0) save the weights as NAME.pt in OUT.

    torchrun --standalone --nproc-per-node 2 tests/dist_worker.py SPEC.json K OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from tandem.config import from_dict
from tandem.train.structures import Filler
from tandem.train.trainer import Trainer


def main(spec: str, steps: int, out: str) -> None:
    ranks = None
    for name, raw in json.loads(Path(spec).read_text()).items():
        trainer = Trainer.from_config(from_dict(raw))
        ranks = trainer.ranks
        batches = trainer.batches()
        rows = 0
        for _ in range(steps):
            batch = next(batches)
            rows += 0 if isinstance(batch, Filler) else len(batch)
            trainer.train_step(batch)
        counts = ranks.gather(rows)
        if ranks.writer:
            torch.save(trainer.model.state_dict(), Path(out) / f"{name}.pt")
            (Path(out) / f"{name}.json").write_text(json.dumps(counts))
    if ranks is not None:
        ranks.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
