"""The seed page's Keras example with ``import wandb`` replaced by runlog's drop-ins.

usage: python _keras_seed.py EPOCHS   (in a directory of its own: resume=True uses it)

Changes besides the imports: Keras 3's ``Model(inputs=, outputs=)`` (the page has Keras
2's ``input=``/``output=``), ``verbose=0``, ``epochs`` from the command line, and a
callback that prints "epoch N" for the test to time its signal. The store is the
default one under the current directory.
"""

from __future__ import annotations

import sys

import keras
import numpy as np

from api import sync as wandb
from api.keras import WandbCallback

wandb.init(project="preemptable", resume=True)

if wandb.run.resumed:
    # restore the best model
    model = keras.models.load_model(wandb.restore("model-best.h5").name)
else:
    a = keras.layers.Input(shape=(32,))
    b = keras.layers.Dense(10)(a)
    model = keras.models.Model(inputs=a, outputs=b)


class Progress(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        print("epoch", epoch, flush=True)


model.compile("adam", loss="mse")
model.fit(
    np.random.rand(2000, 32),
    np.random.rand(2000, 10),
    # set the resumed epoch
    initial_epoch=wandb.run.step,
    epochs=int(sys.argv[1]),
    # save the best model if it improved each epoch
    callbacks=[WandbCallback(save_model=True, monitor="loss"), Progress()],
    verbose=0,
)
