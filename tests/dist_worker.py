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
from tandem.structures.base import Filler
from tandem.train.trainer import Trainer


def _nan_at_second_step(trainer: Trainer) -> None:
    """This rank's loss is NaN at step 2 (index 1): every rank must skip that step."""
    loss = trainer.structure.loss

    def poisoned(model, batch, step):
        value, n = loss(model, batch, step)
        return (value * float("nan"), n) if step == 1 else (value, n)

    trainer.structure.loss = poisoned


def main(spec: str, steps: int, out: str) -> None:
    ranks = None
    for name, raw in json.loads(Path(spec).read_text()).items():
        trainer = Trainer.from_config(from_dict(raw))
        ranks = trainer.ranks
        if name.startswith("nan_on_rank_1") and ranks.rank == 1:
            _nan_at_second_step(trainer)
        batches = trainer.batches()
        rows = 0
        for _ in range(steps):
            batch = next(batches)
            rows += 0 if isinstance(batch, Filler) else len(batch)
            trainer.train_step(batch)
        counts = ranks.gather(rows)
        sums = ranks.gather([float(p.double().sum()) for p in trainer.model.parameters()])
        skipped = ranks.gather(trainer.state.skipped_steps)
        if ranks.writer:
            torch.save(trainer.model.state_dict(), Path(out) / f"{name}.pt")
            (Path(out) / f"{name}.json").write_text(json.dumps(
                {"rows": counts, "param_sums": sums, "skipped": skipped}))
    if ranks is not None:
        ranks.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
