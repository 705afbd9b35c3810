"""The Keras callback that reports a training run's progress to its progress file (:mod:`pneumo_core.jobs.progress`)."""

from __future__ import annotations

import time

import keras

from pneumo_core.jobs.progress import ProgressWriter


class ProgressCallback(keras.callbacks.Callback):
    """Keras callback emitting ``step`` events (at most every ``interval_s``) and ``epoch`` events with ETA."""

    def __init__(self, writer: ProgressWriter, phase: str, epochs: int, steps: int, interval_s: float = 2.0):
        super().__init__()
        self.writer, self.phase, self.epochs, self.steps, self.interval_s = writer, phase, epochs, steps, interval_s
        self._phase_start = self._last_emit = 0.0
        self._epoch = 0
        self._done_steps = 0

    def on_train_begin(self, logs=None):
        self._phase_start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _eta(self, completed_steps: int) -> float | None:
        total = self.epochs * self.steps
        elapsed = time.time() - self._phase_start
        return elapsed / completed_steps * (total - completed_steps) if completed_steps else None

    def on_train_batch_end(self, batch, logs=None):
        self._done_steps += 1
        now = time.time()
        if now - self._last_emit >= self.interval_s:
            self._last_emit = now
            self.writer.emit(
                "step",
                phase=self.phase,
                epoch=self._epoch + 1,
                epochs=self.epochs,
                step=batch + 1,
                steps=self.steps,
                metrics={k: float(v) for k, v in (logs or {}).items()},
                eta_s=self._eta(self._done_steps),
            )

    def on_epoch_end(self, epoch, logs=None):
        self.writer.emit(
            "epoch",
            phase=self.phase,
            epoch=epoch + 1,
            epochs=self.epochs,
            steps=self.steps,
            metrics={k: float(v) for k, v in (logs or {}).items()},
            eta_s=self._eta(self._done_steps),
        )
