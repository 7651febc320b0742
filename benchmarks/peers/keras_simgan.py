"""A TensorFlow 2 / Keras 3 SimGAN, as the seed's port (mnjm/SimGAN) trains it: the benchmark's peer.

Written from the paper (Shrivastava et al., CVPR 2017, section 3.1 and the
appendix), not copied from the port. It runs under its own interpreter
(``benchmarks/peers/requirements.txt``), never under the project's venv, and
is driven by ``benchmarks/peers/run.py`` over stdin/stdout so that it can be
timed interleaved with the PyTorch loops on the same load.

* Refiner: conv3x3 64 + ReLU, 4 ResNet blocks (two 3x3 convs of 64, identity
  skip, ReLU), conv1x1 to the image's channels, tanh.
* Local-patch discriminator: conv3x3/2 96, conv3x3/2 64, maxpool 3x3/1,
  conv3x3 32, conv1x1 32, conv1x1 2; "same" padding, ReLUs.
* One round: one R update (adversarial cross-entropy over D's patches plus
  lambda * L1 self-regularisation, D held fixed) and one D update on refined
  images (half now, half from an image history buffer) and real ones.

The port freezes D with ``D.trainable = False`` on a combined model, which on
Keras 3 also freezes D's own updates. Here each update is a ``tf.function``
over a ``GradientTape`` that differentiates only the network it trains, so D
trains, and the graph is traced once per shape, as a competent Keras user
writes it. XLA is not used: Keras itself disables ``jit_compile="auto"`` on
CPU-only machines.

Protocol (one command per line on stdin, one JSON line per answer on stdout)::

    setup BATCH          build networks and data for BATCH; one warm-up round
    train                one timed round   -> {"seconds": s}
    infer BATCH          one timed predict_on_batch of BATCH images -> {"seconds": s}
    quit
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from keras import layers

SIZE = (35, 55)
POOL = 2048
REG_WEIGHT = 1.0
LEARNING_RATE = 1e-4


def build_refiner(channels: int = 1, features: int = 64, blocks: int = 4) -> keras.Model:
    """The paper's refiner, NHWC."""
    inputs = keras.Input((*SIZE, channels))
    x = layers.Conv2D(features, 3, padding="same", activation="relu")(inputs)
    for _ in range(blocks):
        y = layers.Conv2D(features, 3, padding="same", activation="relu")(x)
        y = layers.Conv2D(features, 3, padding="same")(y)
        x = layers.ReLU()(layers.Add()([x, y]))
    outputs = layers.Conv2D(channels, 1, padding="same", activation="tanh")(x)
    return keras.Model(inputs, outputs, name="refiner")


def build_discriminator(channels: int = 1) -> keras.Model:
    """The paper's local-patch discriminator: (B, h, w, 2) logits, one pair per patch."""
    inputs = keras.Input((*SIZE, channels))
    x = layers.Conv2D(96, 3, strides=2, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(3, strides=1, padding="same")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.Conv2D(32, 1, padding="same", activation="relu")(x)
    outputs = layers.Conv2D(2, 1, padding="same")(x)
    return keras.Model(inputs, outputs, name="discriminator")


def patch_cross_entropy(logits: tf.Tensor, label: int) -> tf.Tensor:
    """Mean cross-entropy of every patch's two logits against one class (0 refined, 1 real)."""
    labels = tf.fill(tf.shape(logits)[:-1], label)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))


class KerasSimGAN:
    """The networks, optimisers, in-memory data and history buffer of one batch size."""

    def __init__(self, batch: int, seed: int = 0) -> None:
        keras.utils.set_random_seed(seed)
        self.batch = batch
        self.refiner, self.discriminator = build_refiner(), build_discriminator()
        self.opt_r = keras.optimizers.Adam(LEARNING_RATE)
        self.opt_d = keras.optimizers.Adam(LEARNING_RATE)
        self.opt_r.build(self.refiner.trainable_variables)
        self.opt_d.build(self.discriminator.trainable_variables)
        rng = np.random.default_rng(seed)
        # uint8 images in memory, as refinekit and the plain loop hold them.
        self.synthetic = rng.integers(0, 256, (POOL, *SIZE, 1), dtype=np.uint8)
        self.real = rng.integers(0, 256, (POOL, *SIZE, 1), dtype=np.uint8)
        self.buffer = np.zeros((batch * 10, *SIZE, 1), dtype=np.float32)
        self.buffer_size = 0
        self.rng = rng

    def sample(self, images: np.ndarray) -> np.ndarray:
        return images[self.rng.integers(0, len(images), self.batch)].astype(np.float32) / 127.5 - 1.0

    @tf.function
    def refiner_update(self, synthetic: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            refined = self.refiner(synthetic, training=True)
            adversarial = patch_cross_entropy(self.discriminator(refined, training=False), 1)
            loss = adversarial + REG_WEIGHT * tf.reduce_mean(tf.abs(refined - synthetic))
        weights = self.refiner.trainable_variables
        self.opt_r.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return loss

    @tf.function
    def refine(self, synthetic: tf.Tensor) -> tf.Tensor:
        return self.refiner(synthetic, training=False)

    @tf.function
    def discriminator_update(self, refined: tf.Tensor, real: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = patch_cross_entropy(self.discriminator(refined, training=True), 0) + patch_cross_entropy(
                self.discriminator(real, training=True), 1
            )
        weights = self.discriminator.trainable_variables
        self.opt_d.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return loss

    def round(self) -> None:
        """One R update and one D update; D sees half current refined images, half history (paper 2.3)."""
        float(self.refiner_update(self.sample(self.synthetic)))
        half = self.batch // 2
        synthetic, real = self.sample(self.synthetic), self.sample(self.real)
        if self.buffer_size:
            current = self.refine(synthetic[:half]).numpy()
            history = self.buffer[self.rng.integers(0, self.buffer_size, self.batch - half)]
            shown = np.concatenate([current, history])
        else:
            shown = self.refine(synthetic).numpy()
            current = shown[:half]
        float(self.discriminator_update(shown, real))
        free = min(len(self.buffer) - self.buffer_size, half)
        self.buffer[self.buffer_size : self.buffer_size + free] = current[:free]
        self.buffer_size += free
        if free < half:
            self.buffer[self.rng.choice(len(self.buffer), half - free, replace=False)] = current[free:]

    def infer(self, batch: int) -> None:
        x = self.synthetic[:batch].astype(np.float32) / 127.5 - 1.0
        self.refiner.predict_on_batch(x)


def serve() -> None:
    """Answer the protocol in the module docstring until ``quit`` or end of input."""
    gan: KerasSimGAN | None = None
    for line in sys.stdin:
        command, *args = line.split()
        reply: dict[str, object] = {}
        if command == "setup":
            gan = KerasSimGAN(int(args[0]))
            d_before = [w.numpy().copy() for w in gan.discriminator.trainable_variables]
            gan.round()
            gan.round()  # the second traces the buffer-half shapes
            moved = any(not np.array_equal(a, w.numpy()) for a, w in zip(d_before, gan.discriminator.trainable_variables))
            reply = {"tensorflow": tf.__version__, "keras": keras.__version__, "d_trains": moved,
                     "threads": [tf.config.threading.get_intra_op_parallelism_threads(),
                                 tf.config.threading.get_inter_op_parallelism_threads()]}
        elif command == "train":
            start = time.perf_counter()
            gan.round()
            reply = {"seconds": time.perf_counter() - start}
        elif command == "infer":
            batch = int(args[0])
            if gan is None:
                gan = KerasSimGAN(batch)
            start = time.perf_counter()
            gan.infer(batch)
            reply = {"seconds": time.perf_counter() - start}
        elif command == "quit":
            return
        else:
            reply = {"error": f"unknown command {command!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    serve()
