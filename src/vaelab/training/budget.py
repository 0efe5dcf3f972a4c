"""`--time`: fit the number of epochs to a wall-clock budget.

The budget covers the epochs (their steps, validation and checkpoints). After a few warm-up
steps the time of the next steps gives the cost of one step, and the epochs are chosen so
that the run ends within the budget; at the end of the first epoch the estimate is refined
with that epoch's measured time, overheads included. The cosine schedule then follows the
fitted number of epochs, so the learning rate still decays to zero at the end.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

WARM_STEPS = 5  # steps before the timing starts (allocation, first-touch costs)
TIMED_STEPS = 20  # steps whose time gives the first estimate
EVAL_COST = 1 / 3  # an evaluation image costs about a third of a training image (no backward)


@dataclass
class TimeBudget:
    """The budget of one training session, and what has been measured of it."""

    seconds: float
    steps_per_epoch: int
    val_batches: int  # validation batches per epoch
    min_epochs: int = 1  # the learning-rate warm-up must fit
    started: float = field(default_factory=lambda: time.perf_counter())
    _timer: tuple[int, float] | None = None  # (step, time) when the timing began

    def after_step(self, session_step: int, total_step: int) -> int | None:
        """Called after every step of this session; returns the fitted epochs once, when
        the timed steps are done, else None."""
        now = time.perf_counter()
        if session_step == WARM_STEPS:
            self._timer = (session_step, now)
        elif self._timer and session_step == self._timer[0] + TIMED_STEPS:
            step_seconds = (now - self._timer[1]) / TIMED_STEPS
            epoch_seconds = step_seconds * (self.steps_per_epoch + EVAL_COST * self.val_batches)
            return self._fit(now, total_step, step_seconds, epoch_seconds)
        return None

    def after_first_epoch(self, epoch_seconds: float, total_step: int) -> int:
        """Refit with the first epoch's measured time (validation and writes included)."""
        step_seconds = epoch_seconds / (self.steps_per_epoch + EVAL_COST * self.val_batches)
        return self._fit(time.perf_counter(), total_step, step_seconds, epoch_seconds)

    def _fit(self, now: float, total_step: int, step_seconds: float,
             epoch_seconds: float) -> int:
        """The most epochs whose remaining steps fit in what is left of the budget."""
        left = self.seconds - (now - self.started)
        done = total_step / self.steps_per_epoch  # epochs' worth of steps already taken
        epochs = math.floor(done + max(left, 0.0) / epoch_seconds)
        return max(epochs, self.min_epochs, math.ceil(done))
