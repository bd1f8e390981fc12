"""The normal-only threshold with a stated guarantee (order statistics of held-out normal scores)."""
import numpy as np
import pytest

from exdd_lab.errors import ExddError
from exdd_lab.evaluation.thresholds import (exceedance_probability, guaranteed_threshold, held_out_needed,
                                            promised_false_alarm_rate)


def test_the_textbook_numbers():
    assert held_out_needed(0.01, 0.95) == 299  # (1 - 0.01)^n <= 0.05 first at n = 299
    assert exceedance_probability(299, 1, 0.01) <= 0.05 < exceedance_probability(298, 1, 0.01)
    assert promised_false_alarm_rate(12, 1, 0.95) == pytest.approx(1 - 0.05 ** (1 / 12), abs=1e-9)  # about 22 %
    assert held_out_needed(0.01, 0.95, k=3) > held_out_needed(0.01, 0.95, k=1)  # a laxer order statistic needs more


def test_the_threshold_is_the_most_permissive_order_statistic_that_keeps_the_promise():
    scores = np.random.default_rng(0).normal(size=1000)
    choice = guaranteed_threshold(scores, 0.01, 0.95)
    assert choice.meets_request and choice.alpha_promised == 0.01 and choice.n == 1000
    assert exceedance_probability(1000, choice.k, 0.01) <= 0.05 < exceedance_probability(1000, choice.k + 1, 0.01)
    assert choice.threshold == np.sort(scores)[::-1][choice.k - 1] and choice.k > 1
    at_299 = guaranteed_threshold(scores[:299], 0.01, 0.95)
    assert at_299.k == 1 and at_299.threshold == scores[:299].max() and at_299.meets_request


def test_too_few_normals_state_what_they_can_promise():
    choice = guaranteed_threshold(np.arange(12.0), 0.01, 0.95)
    assert not choice.meets_request and choice.k == 1 and choice.threshold == 11.0
    assert choice.alpha_promised == pytest.approx(0.2209, abs=1e-4)
    assert "22.09%" in choice.sentence() and "299" in choice.sentence()


def _exceedance_share(rule, n: int, draws: int = 4000) -> float:
    """How often a rule's threshold breaks the rate it promises, on uniform normal scores (false alarms: 1 - t).
    ``rule(scores) -> (threshold, promised rate)``."""
    rng = np.random.default_rng(1)
    return float(np.mean([1 - t > promised for t, promised in (rule(rng.random(n)) for _ in range(draws))]))


@pytest.mark.parametrize("n,alpha", [(12, 0.01), (50, 0.05), (400, 0.01)])
def test_the_guarantee_holds_and_the_plain_quantile_does_not(n, alpha):
    """Simulated: the promised rate is exceeded in at most 1 - confidence of the draws (within sampling error), also
    where n is too small for the rate asked; the plain 1 - alpha quantile, today's rule, breaks its promise far more."""
    confidence, draws = 0.95, 4000

    def guaranteed(scores):
        choice = guaranteed_threshold(scores, alpha, confidence)
        return choice.threshold, choice.alpha_promised

    assert _exceedance_share(guaranteed, n, draws) <= 1 - confidence + 3 * np.sqrt(0.05 * 0.95 / draws)
    assert _exceedance_share(lambda s: (np.quantile(s, 1 - alpha), alpha), n, draws) > 0.3


@pytest.mark.parametrize("scores,alpha,confidence,match", [
    ([], 0.01, 0.95, "no held-out"), ([1.0, np.nan], 0.01, 0.95, "not finite"),
    ([1.0, 2.0], 1.0, 0.95, r"\(0, 1\)"), ([1.0, 2.0], np.nan, 0.95, r"\(0, 1\)"), ([1.0, 2.0], 0.01, 1.5, "confidence"),
])
def test_bad_input_is_refused(scores, alpha, confidence, match):
    with pytest.raises(ExddError, match=match):
        guaranteed_threshold(scores, alpha, confidence)
