"""fANOVA importance on synthetic functions whose variance decomposition is known."""

from __future__ import annotations

import numpy as np
import pytest

from raytuner._report.importance import fanova

pytest.importorskip("sklearn")


def test_an_additive_function_gets_its_exact_variance_shares():
    # y = 4 a + b over the unit square, c unused: Var(4a) = 16/12 and Var(b) = 1/12, so
    # the main effects explain 16/17 and 1/17 of the variance, c nothing.
    x = np.random.default_rng(0).random((400, 3))
    shares = fanova(x, 4 * x[:, 0] + x[:, 1])
    assert shares == pytest.approx([16 / 17, 1 / 17, 0.0], abs=0.03)


def test_parameters_that_do_not_matter_score_near_zero_with_few_trials():
    # The case the correlation ratio got wrong: 30 trials, one parameter that matters.
    x = np.random.default_rng(1).random((30, 4))
    shares = fanova(x, (x[:, 0] - 0.3) ** 2)
    assert shares[0] > 0.8
    assert max(shares[1:]) < 0.05


def test_a_pure_interaction_leaves_the_main_effects_near_zero():
    # y = (a - .5)(b - .5): each marginal is flat, all the variance is the interaction.
    x = np.random.default_rng(2).random((600, 2))
    shares = fanova(x, (x[:, 0] - 0.5) * (x[:, 1] - 0.5))
    assert max(shares) < 0.1


def test_constant_or_too_few_values_score_zero_and_non_finite_values_are_left_out():
    x = np.random.default_rng(3).random((10, 2))
    assert list(fanova(x, np.ones(10))) == [0.0, 0.0]
    assert list(fanova(x[:2], [1.0, 2.0])) == [0.0, 0.0]
    y = 3 * x[:, 1]
    y[0] = np.nan
    assert np.argmax(fanova(x, y)) == 1
