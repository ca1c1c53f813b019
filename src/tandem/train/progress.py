"""Training progress for people: a progress bar on a terminal; one plain log line every
`train.log_every` steps when stderr is a file or a pipe (a carriage-return bar repeated there
is thousands of lines of noise). Both show the time left to whichever limit ends the run
first: `train.max_steps`, `train.max_minutes` or `train.max_epochs`."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from tandem.config import TrainConfig

log = logging.getLogger("tandem")


def time_left(t: TrainConfig, step: int, steps_per_s: float, elapsed_s: float,
              epochs_left_steps: int | None = None) -> tuple[float | None, str | None]:
    """Seconds until the first limit that binds, and that limit's config key.

    `step` is the number of updates so far, `steps_per_s` the current rate (0 = not known
    yet), `elapsed_s` the training time of the whole run (resumes included), and
    `epochs_left_steps` the steps left until `train.max_epochs` when known. Returns
    (None, None) when no limit can be estimated yet.
    """
    left: dict[str, float] = {}
    if steps_per_s > 0:
        left["max_steps"] = max(0, t.max_steps - step) / steps_per_s
        if t.max_epochs is not None and epochs_left_steps is not None:
            left["max_epochs"] = max(0, epochs_left_steps) / steps_per_s
    if t.max_minutes is not None:
        left["max_minutes"] = max(0.0, t.max_minutes * 60 - elapsed_s)
    if not left:
        return None, None
    key = min(left, key=left.__getitem__)
    return left[key], key


def hms(seconds: float) -> str:
    """Seconds as H:MM:SS."""
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Where training is, on `stream` (default stderr), if `enabled` (train.progress).

    On a terminal: a tqdm bar counting steps up to `total` (train.max_steps), with loss,
    learning rate, tokens/s and the binding limit's ETA after it. Elsewhere: `report` logs
    one plain line ("step 200/900 loss 1.234 lr 0.003 tok/s 5210 eta 0:01:10 (max_minutes)"),
    which also lands in train.log.
    """

    def __init__(self, total: int, initial: int, enabled: bool,
                 stream: TextIO | None = None) -> None:
        stream = sys.stderr if stream is None else stream
        self.total = total
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self.bar = None
        if self.tty:
            from tqdm import tqdm

            # tqdm's own remaining time counts to `total` only; ours comes in the postfix
            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                            leave=False, file=stream,
                            bar_format="{n_fmt}/{total_fmt} steps [{elapsed}, {rate_fmt}]"
                                       "{postfix}")

    def step(self) -> None:
        """One more update done."""
        if self.bar is not None:
            self.bar.update(1)

    def report(self, step: int, loss: float, lr: float, tokens_per_s: float,
               eta: tuple[float | None, str | None]) -> None:
        """The figures of the last `train.log_every` steps (mean loss per token, the current
        learning rate, source + target tokens per second) and `time_left`'s estimate."""
        if not self.enabled:
            return
        when = "" if eta[0] is None else f" eta {hms(eta[0])} ({eta[1]})"
        text = f"loss {loss:.3f} lr {lr:.3g} tok/s {tokens_per_s:.0f}{when}"
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=True)
        else:
            log.info("step %d/%d %s", step, self.total, text)

    def close(self) -> None:
        """Remove the bar (no-op for plain lines)."""
        if self.bar is not None:
            self.bar.close()
