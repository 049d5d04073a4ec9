"""The Gaussian mixture fitted to a VAE's codes (apps/voice/latent_mixture.py): EM finds
separated clusters, their weights and spreads, and sampling draws from them."""
from __future__ import annotations

import numpy as np
import pytest

from apps.voice.latent_mixture import choose_mixture, fit_mixture, mean_loglik, sample_mixture


def _three_clusters(n=(600, 300, 100), seed=0):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    scales = np.array([[1.0, 0.3], [0.5, 2.0], [0.2, 0.2]])
    X = np.concatenate([m + s * rng.standard_normal((k, 2)) for m, s, k in zip(means, scales, n)])
    return X, means, scales, np.array(n) / sum(n)


def test_em_recovers_separated_clusters_their_weights_and_spreads():
    X, means, scales, weights = _three_clusters()
    fit = fit_mixture(X, k=3, seed=1)
    order = [int(np.argmin(((fit["mix_means"] - m) ** 2).sum(1))) for m in means]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(fit["mix_means"][order], means, atol=0.3)
    np.testing.assert_allclose(fit["mix_weights"][order], weights, atol=0.02)
    cov = np.einsum("kij,klj->kil", fit["mix_chol"], fit["mix_chol"])[order]
    np.testing.assert_allclose(np.sqrt(np.diagonal(cov, axis1=1, axis2=2)), scales, rtol=0.2)
    # the mixture explains the data far better than one Gaussian does
    one = fit_mixture(X, k=1, seed=1)
    assert float(fit["mix_loglik"]) > float(one["mix_loglik"]) + 1.0


def test_samples_follow_the_mixture_and_the_generator():
    X, means, _, weights = _three_clusters()
    fit = fit_mixture(X, k=3, seed=1)
    z = sample_mixture(fit, 4000, np.random.default_rng(5))
    assert z.shape == (4000, 2)
    nearest = np.argmin(((z[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(np.bincount(nearest, minlength=3) / 4000, weights, atol=0.03)
    again = sample_mixture(fit, 4000, np.random.default_rng(5))
    np.testing.assert_array_equal(z, again)


def test_too_few_codes_are_refused():
    with pytest.raises(ValueError, match="N >= k"):
        fit_mixture(np.zeros((3, 2)), k=10)


def test_the_validation_codes_choose_the_size():
    X, *_ = _three_clusters(seed=0)
    X_val, *_ = _three_clusters(n=(300, 150, 50), seed=1)
    arrays, table = choose_mixture(X, X_val, sizes=(1, 3), seed=1)
    assert set(table) == {1, 3} and table[3] > table[1]
    assert len(arrays["mix_weights"]) == 3
    assert float(arrays["mix_val_loglik"]) == pytest.approx(mean_loglik(arrays, X_val))
    assert mean_loglik(arrays, X) == pytest.approx(float(arrays["mix_loglik"]), abs=1e-3)
