"""Keras picks its backend once, at import: the tests install torch, not TensorFlow."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
