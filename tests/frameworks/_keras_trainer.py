"""A tiny Keras 3 training script for the kill-and-resume tests.

usage: python _keras_trainer.py STORE RUN_ID EPOCHS   (RUN_ID -: from the environment)

Prints "started EPOCH", "batch EPOCH INDEX" after every batch and "done" at the end.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np

from api.keras import RunlogCallback


class Progress(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        print("batch", self.epoch, batch, flush=True)


def main(store: str, run_id: str, epochs: int) -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1)) + 0.1).astype("float32")
    if run_id == "-":  # the id and the resume mode from the environment, as a sweep agent sets them
        callback = RunlogCallback(project="p", store=store, monitor="loss")
    else:
        callback = RunlogCallback(
            project="p", id=run_id, resume="allow", store=store, monitor="loss"
        )
    model = callback.restore()
    if model is None:
        model = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
        )
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    print("started", callback.initial_epoch, flush=True)
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        initial_epoch=callback.initial_epoch,
        callbacks=[callback, Progress()],
    )
    callback.run.finish()
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
