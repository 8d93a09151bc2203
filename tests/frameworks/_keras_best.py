"""Two incarnations of one run: the best loss of the first decides the second's saves.

usage: python _keras_best.py STORE
"""

from __future__ import annotations

import sys

import keras
import numpy as np

from api import sync
from api.keras import RunlogCallback

store = sys.argv[1]
model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
model.compile(optimizer="adam", loss="mse")
model.fit(np.ones((4, 2)), np.ones((4, 1)), verbose=0)  # builds the optimizer's state
with sync.init(project="p", id="r1", resume="allow", store=store) as run:
    first = RunlogCallback(run, monitor="loss")
    first.set_model(model)
    first.on_epoch_end(0, {"loss": 0.5})
    first.on_epoch_end(1, {"loss": 0.2})
with sync.init(project="p", id="r1", resume="allow", store=store) as run:
    second = RunlogCallback(run, monitor="loss")
    assert second.restore() is not None
    assert (second.best, second.initial_epoch) == (0.2, 2), (second.best, second.initial_epoch)
    second.set_model(model)
    second.on_epoch_end(2, {"loss": 0.3})  # worse than before the resume: not the best
