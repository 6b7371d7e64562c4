"""Repeat buying, as numbers: the BG/NBD model (Fader, Hardie and Lee 2005, "Counting your
customers the easy way") and the Gamma-Gamma spend model, fitted by maximum likelihood with
scipy. Pure numerics: arrays in, arrays out, no database.

Why not a library: ``lifetimes`` is unmaintained and breaks on pandas 3; ``pymc-marketing``
is maintained but brings PyMC, PyTensor and a compiler toolchain for what is, at our scale, a
four-parameter likelihood. The likelihood below is written in log space
(``scipy.special.gammaln``, ``numpy.logaddexp``) and optimised over log-parameters, so it
stays finite for buyers with hundreds of purchases and for parameters far from the optimum.

A buyer is summarised by ``x`` (repeat purchases: purchase days after the first),
``t_x`` (time from the first to the last purchase) and ``T`` (time from the first purchase to
the end of observation), in one time unit (the callers use weeks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

Array = np.ndarray


@dataclass(frozen=True)
class BgNbd:
    """Purchase rates ~ Gamma(r, alpha); drop-out probability after each purchase ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True)
class GammaGamma:
    """Spend per purchase ~ Gamma(p, nu), nu ~ Gamma(q, gamma) across buyers."""

    p: float
    q: float
    gamma: float


def _arrays(*values: object) -> list[Array]:
    return [np.asarray(v, dtype=float) for v in values]


def bgnbd_log_likelihood(params: BgNbd, x: object, t_x: object, T: object) -> Array:
    """Each buyer's log-likelihood under ``params`` (equation 6 of the paper, in log space)."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return a1 + a2 + np.logaddexp(a3, a4)


def _compress(x: Array, t_x: Array, T: Array) -> tuple[Array, Array, Array, Array]:
    """Identical (x, t_x, T) rows once, with their count: the likelihood is summed per row."""
    stacked = np.column_stack([x, t_x, T])
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return unique[:, 0], unique[:, 1], unique[:, 2], counts.astype(float)


def fit_bgnbd(x: object, t_x: object, T: object, *, penalizer: float = 0.0) -> BgNbd:
    """Maximum-likelihood BG/NBD parameters for the buyers ``(x, t_x, T)``."""
    x, t_x, T = _arrays(x, t_x, T)
    if len(x) == 0:
        raise ValueError("no buyers to fit")
    ux, ut, uT, weight = _compress(x, t_x, T)
    total = weight.sum()
    scale = max(float(np.mean(T)), 1e-6)  # start alpha near the time scale of the data

    def negative(log_params: Array) -> float:
        params = BgNbd(*np.exp(log_params))
        ll = bgnbd_log_likelihood(params, ux, ut, uT)
        value = -(weight * ll).sum() / total + penalizer * float(np.sum(np.exp(log_params) ** 2))
        return float(value) if np.isfinite(value) else 1e12

    best = None
    for start in (np.log([1.0, scale, 1.0, 1.0]), np.log([0.25, scale / 4, 0.8, 2.5])):
        result = optimize.minimize(negative, start, method="Nelder-Mead",
                                   options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-10})
        result = optimize.minimize(negative, result.x, method="L-BFGS-B")
        if best is None or result.fun < best.fun:
            best = result
    assert best is not None
    r, alpha, a, b = np.exp(best.x)
    return BgNbd(float(r), float(alpha), float(a), float(b))


def p_alive(params: BgNbd, x: object, t_x: object, T: object) -> Array:
    """Probability that each buyer is still active at ``T`` (equation 11)."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ratio = np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        odds = np.where(x > 0, np.exp(np.minimum(log_ratio, 700.0)), 0.0)
    return 1.0 / (1.0 + odds)


def expected_purchases(params: BgNbd, t: float, x: object, t_x: object, T: object) -> Array:
    """Expected purchases of each buyer in the next ``t`` time units (equation 10)."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + T + t)
    log_decay = (r + x) * (np.log(alpha + T) - np.log(alpha + T + t))
    hyper = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    head = (a + b + x - 1) / (a - 1) if abs(a - 1) > 1e-9 else np.full_like(x, np.inf)
    value = head * (1.0 - np.exp(log_decay) * hyper)
    if not np.all(np.isfinite(value)) or abs(a - 1) < 1e-6:
        value = _expected_purchases_numeric(params, t, x, T)
    return value * p_alive(params, x, t_x, T)


def _expected_purchases_numeric(params: BgNbd, t: float, x: Array, T: Array) -> Array:
    """E[purchases in t | alive] by integrating over the posterior of (lambda, p), for the
    corner (a near 1, hyp2f1 overflow) where the closed form is unusable."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    nodes, weights = np.polynomial.legendre.leggauss(64)
    p = (nodes + 1) / 2  # posterior of p given alive: Beta(a, b + x)
    out = np.empty_like(x)
    for i, (xi, Ti) in enumerate(zip(x, T, strict=True)):
        density = stats.beta.pdf(p, a, b + xi) * weights / 2
        # E[(1 - e^{-lam p t}) / p] with lam ~ Gamma(r + x, alpha + T)
        inner = (1 - ((alpha + Ti) / (alpha + Ti + p * t)) ** (r + xi)) / p
        out[i] = float(np.sum(density * inner))
    return out


def p_buy_again(params: BgNbd, t: float, x: object, t_x: object, T: object) -> Array:
    """Probability of at least one purchase in the next ``t``: alive, and the posterior
    Poisson rate (Gamma(r + x, alpha + T) given alive) produces a purchase."""
    x, t_x, T = _arrays(x, t_x, T)
    none_if_alive = np.exp((params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + T + t)))
    return p_alive(params, x, t_x, T) * (1.0 - none_if_alive)


def simulate(params: BgNbd, T: object, rng: np.random.Generator) -> tuple[Array, Array, Array]:
    """Draw buyers from the model: (x, t_x, T) for observation lengths ``T``."""
    (T,) = _arrays(T)
    lam = rng.gamma(params.r, 1.0 / params.alpha, size=len(T))
    p = rng.beta(params.a, params.b, size=len(T))
    x = np.zeros(len(T))
    t_x = np.zeros(len(T))
    for i in range(len(T)):
        now = 0.0
        while True:
            now += rng.exponential(1.0 / lam[i])
            if now > T[i]:
                break
            x[i] += 1
            t_x[i] = now
            if rng.random() < p[i]:
                break
    return x, t_x, T


# -- spend: Gamma-Gamma --------------------------------------------------------------------


def gamma_gamma_log_likelihood(params: GammaGamma, x: object, mean_spend: object) -> Array:
    x, m = _arrays(x, mean_spend)
    p, q, g = params.p, params.q, params.gamma
    return (special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q) + q * np.log(g)
            + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(g + x * m))


def fit_gamma_gamma(x: object, mean_spend: object) -> GammaGamma:
    """Gamma-Gamma parameters from buyers with repeat purchases (``x > 0``, mean spend > 0)."""
    x, m = _arrays(x, mean_spend)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) < 2:
        raise ValueError("need at least two repeat buyers with spend to fit")

    def negative(log_params: Array) -> float:
        value = -gamma_gamma_log_likelihood(GammaGamma(*np.exp(log_params)), x, m).mean()
        return float(value) if np.isfinite(value) else 1e12

    start = np.log([1.0, 2.0, float(np.mean(m))])
    result = optimize.minimize(negative, start, method="Nelder-Mead", options={"maxiter": 4000})
    result = optimize.minimize(negative, result.x, method="L-BFGS-B")
    p, q, g = np.exp(result.x)
    return GammaGamma(float(p), float(q), float(g))


def expected_spend(params: GammaGamma, x: object, mean_spend: object) -> Array:
    """Each buyer's expected spend per purchase (the population mean for ``x = 0``)."""
    x, m = _arrays(x, mean_spend)
    m = np.where(x > 0, m, 0.0)
    return params.p * (params.gamma + x * m) / (params.p * x + params.q - 1)


# -- evaluation ----------------------------------------------------------------------------


def auc(scores: object, labels: object) -> float:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks for ties)."""
    s, y = _arrays(scores, labels)
    positives = y > 0
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(s)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
