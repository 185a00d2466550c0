"""Temperature scaling on synthetic verdicts whose true reliability is known."""

import numpy as np
import pytest

from core import calibration

pytestmark = pytest.mark.unit


def _overconfident(n: int = 2000, classes: int = 6, sharpen: float = 3.0, seed: int = 0):
    """Truth drawn from honest probabilities; the 'model' reports them sharpened."""
    rng = np.random.default_rng(seed)
    honest = rng.dirichlet(np.full(classes, 0.7), size=n)
    truth = np.array([rng.choice(classes, p=p) for p in honest])
    reported = honest**sharpen
    return reported / reported.sum(axis=1, keepdims=True), truth


def test_temperature_undoes_sharpening_and_lowers_ece():
    reported, truth = _overconfident()
    fitted = calibration.fit(reported, truth)
    assert 2.3 < fitted.temperature < 3.7  # the sharpening was 3
    assert fitted.ece_raw > 0.1
    assert fitted.ece_calibrated < 0.04
    assert fitted.ece_calibrated < fitted.ece_raw / 3


def test_apply_keeps_ranking_and_sums_to_one():
    reported, truth = _overconfident(n=50)
    calibrated = calibration.fit(reported, truth).apply(reported)
    assert np.allclose(calibrated.sum(axis=1), 1.0)
    assert (calibrated.argmax(axis=1) == reported.argmax(axis=1)).all()


def test_ece_of_a_perfectly_calibrated_model_is_small_and_of_a_liar_large():
    rng = np.random.default_rng(1)
    confident_right = np.tile([0.9, 0.1], (1000, 1))
    truth = (rng.random(1000) > 0.9).astype(int)  # right 90 % of the time
    assert calibration.expected_calibration_error(confident_right, truth) < 0.03
    always_wrong = np.ones(1000, dtype=int)
    assert calibration.expected_calibration_error(confident_right, always_wrong) > 0.85


def test_reliability_plot_is_written(tmp_path):
    reported, truth = _overconfident(n=300)
    fitted = calibration.fit(reported, truth)
    path = calibration.plot_reliability(
        reported, fitted.apply(reported), truth, tmp_path / "r.png", "test"
    )
    assert path.stat().st_size > 10_000


def test_no_data_gives_the_identity():
    assert calibration.fit(np.zeros((0, 3)), np.zeros(0)).temperature == 1.0
