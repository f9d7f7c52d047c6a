"""TensorFlow's custom-gradient registry holds a trial's graphs only while they live."""

from __future__ import annotations

import gc
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")

from raytuner._worker import tf_gradients as _tf_gradients  # noqa: E402
from raytuner._worker.actor import _release_trial_state  # noqa: E402


@tf.custom_gradient
def clipped(x):
    def grad(dy):
        return tf.clip_by_value(dy, -0.1, 0.1)

    return tf.identity(x), grad


@tf.function
def forward(w):
    return tf.reduce_sum(clipped(w) * 3.0)


def _entries():
    from tensorflow.python.framework import ops

    return {name for name in ops._gradient_registry._registry if name.startswith("CustomGradient-")}


@pytest.fixture(autouse=True)
def installed():
    assert _tf_gradients.install()
    assert _tf_gradients.install()  # idempotent


def test_a_long_lived_function_traced_in_one_trial_differentiates_in_the_next():
    w = tf.Variable([1.0, 2.0])
    assert float(forward(w)) == 9.0  # trial 1: traced, forward only
    _release_trial_state()  # the trial ends: clear_session, collection, prune
    with tf.GradientTape() as tape:  # trial 2: the same traced function, now differentiated
        y = forward(w)
    assert tape.gradient(y, w).numpy().tolist() == pytest.approx([0.1, 0.1])


def test_the_entries_of_a_collected_graph_are_pruned():
    before = _entries()

    def trial():
        @tf.function
        def step(w):
            with tf.GradientTape() as tape:
                y = tf.reduce_sum(clipped(w) * 2.0)
            return tape.gradient(y, w)

        w = tf.Variable([1.0])
        assert step(w).numpy().tolist() == pytest.approx([0.1])
        return _entries() - before

    added = trial()
    assert added, "the trace registered a custom gradient"
    gc.collect()
    assert _tf_gradients.prune() >= len(added)
    assert not (_entries() & added)


def test_a_custom_gradient_inside_a_cond_branch_still_differentiates():
    @tf.function
    def step(w, flag):
        with tf.GradientTape() as tape:
            y = tf.cond(flag, lambda: tf.reduce_sum(clipped(w) * 5.0), lambda: tf.reduce_sum(w))
        return tape.gradient(y, w)

    w = tf.Variable([1.0, 1.0])
    gc.collect()
    _tf_gradients.prune()
    assert step(w, tf.constant(True)).numpy().tolist() == pytest.approx([0.1, 0.1])
    assert step(w, tf.constant(False)).numpy().tolist() == pytest.approx([1.0, 1.0])
