"""A Gaussian mixture fitted to a VAE's training codes: the "ex-post density estimation" of
Ghosh et al. (2020, "From variational to deterministic autoencoders"), as a prior to sample.

Why: with the KL weight the seed's loss gives (lambda = 5000 against a summed KL), the codes
mu(x) of the training spectrograms do not fill N(0, I). Its samples land between the digits'
clusters and decode to sounds no listener (and no classifier) recognises. A mixture of K full
Gaussians fitted to the codes, without the labels, samples where the codes are.

Expectation-maximisation (Dempster et al. 1977) on codes X (N, d), K components:

    E:  r_nk = pi_k N(x_n; m_k, S_k) / sum_j pi_j N(x_n; m_j, S_j)                  (1)
    M:  N_k = sum_n r_nk,   pi_k = N_k / N,   m_k = sum_n r_nk x_n / N_k            (2)
        S_k = sum_n r_nk (x_n - m_k)(x_n - m_k)^T / N_k + eps I                       (3)

started from k-means++ centres (Arthur and Vassilvitskii 2007), each component's covariance
the codes' own at first, stopped when the mean log-likelihood gains less than ``tol``. The
densities are computed in the log domain through the Cholesky factor L_k (S_k = L_k L_k^T).

    arrays = fit_mixture(X, k=10, seed=0)   # {"mix_weights" (K,), "mix_means" (K, d),
                                            #  "mix_chol" (K, d, d)}: stored in a checkpoint
    arrays, table = choose_mixture(X, X_val)    # K by the validation codes' likelihood
    z = sample_mixture(arrays, n, rng)      # (n, d)
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

KEYS = ("mix_weights", "mix_means", "mix_chol")
#: the mixture sizes ``choose_mixture`` tries
SIZES = (1, 10, 20, 40, 60)


def _kmeans_pp(X: np.ndarray, k: int, rng) -> np.ndarray:
    """k-means++ seeding: k rows of X, each next one drawn with probability proportional to
    its squared distance to the nearest centre chosen so far. Returns (k, d)."""
    centres = [X[rng.integers(len(X))]]
    d2 = ((X - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(X), 1.0 / len(X))
        centres.append(X[rng.choice(len(X), p=p)])
        d2 = np.minimum(d2, ((X - centres[-1]) ** 2).sum(1))
    return np.stack(centres)


def _log_joint(X, weights, means, chol) -> np.ndarray:
    """log pi_k + log N(x_n; m_k, L_k L_k^T) for every n, k: (N, K); logsumexp over k gives
    the log-likelihood of x_n, and the softmax over k the responsibilities (1)."""
    N, d = X.shape
    out = np.empty((N, len(means)))
    for j, (m, L) in enumerate(zip(means, chol)):
        sol = solve_triangular(L, (X - m).T, lower=True)         # L^-1 (x - m), (d, N)
        out[:, j] = (-0.5 * (sol ** 2).sum(0) - np.log(np.diag(L)).sum()
                     - 0.5 * d * np.log(2 * np.pi))
    return out + np.log(weights)


def fit_mixture(X, k: int = 10, seed: int = 0, iters: int = 200, tol: float = 1e-5,
                eps: float = 1e-6) -> dict:
    """EM for a K-component full-covariance Gaussian mixture on X (N, d), (1)-(3). Returns the
    arrays ``sample_mixture`` reads (float64), plus "mix_loglik": the mean log-likelihood per
    code at the end, a 0-d array."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < k:
        raise ValueError(f"fit_mixture: need codes (N, d) with N >= k = {k}, got {X.shape}")
    rng = np.random.default_rng(seed)
    N, d = X.shape
    means = _kmeans_pp(X, k, rng)
    cov0 = np.cov(X, rowvar=False).reshape(d, d) + eps * np.eye(d)
    chol = np.repeat(np.linalg.cholesky(cov0)[None], k, axis=0)
    weights = np.full(k, 1.0 / k)
    last = -np.inf
    for _ in range(iters):
        logp = _log_joint(X, weights, means, chol)                       # (N, K)
        lse = logsumexp(logp, axis=1)
        r = np.exp(logp - lse[:, None])                                  # (1)
        Nk = r.sum(0) + 1e-12
        weights = Nk / N                                                 # (2)
        means = (r.T @ X) / Nk[:, None]
        for j in range(k):
            diff = X - means[j]
            cov = (r[:, j, None] * diff).T @ diff / Nk[j] + eps * np.eye(d)  # (3)
            chol[j] = np.linalg.cholesky(cov)
        loglik = float(lse.mean())
        if loglik - last < tol:
            break
        last = loglik
    return {"mix_weights": weights, "mix_means": means, "mix_chol": chol,
            "mix_loglik": np.asarray(loglik)}


def mean_loglik(arrays: dict, X) -> float:
    """The mixture's mean log-likelihood per row of X (N, d): log sum_k pi_k N(x; m_k, S_k)."""
    logp = _log_joint(np.asarray(X, dtype=np.float64), arrays["mix_weights"],
                      arrays["mix_means"], arrays["mix_chol"])
    return float(logsumexp(logp, axis=1).mean())


def choose_mixture(X, X_val, sizes=SIZES, seed: int = 0) -> tuple[dict, dict]:
    """Fit a mixture of each size in ``sizes`` (those with at least as many codes) to X and keep
    the one under which the held-out codes X_val are likeliest: more components always fit the
    training codes better, and past some size they only learn the training points. Returns
    (arrays with "mix_val_loglik", {K: validation mean log-likelihood})."""
    best, table = None, {}
    for k in (k for k in sizes if k <= len(X)):
        fit = fit_mixture(X, k=k, seed=seed)
        table[k] = mean_loglik(fit, X_val)
        if best is None or table[k] > best[1]:
            best = (fit, table[k])
    if best is None:
        raise ValueError(f"choose_mixture: {len(X)} codes, fewer than the smallest size")
    return {**best[0], "mix_val_loglik": np.asarray(best[1])}, table


def sample_mixture(arrays: dict, n: int, rng) -> np.ndarray:
    """n codes (n, d) from the mixture in ``arrays``: a component by its weight, then
    m_k + L_k eps with eps ~ N(0, I)."""
    w = np.asarray(arrays["mix_weights"], dtype=np.float64)
    means, chol = np.asarray(arrays["mix_means"]), np.asarray(arrays["mix_chol"])
    comp = rng.choice(len(w), size=n, p=w / w.sum())
    eps = rng.standard_normal((n, means.shape[1]))
    return means[comp] + np.einsum("nij,nj->ni", chol[comp], eps)
