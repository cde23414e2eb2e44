"""Closed-form predictors for the `opt` tests (known optima, adversarial behaviour)."""

from __future__ import annotations

import itertools

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from dtwin.cm import DEFAULT_CM_SCHEMA as SCHEMA
from opt import Prediction


def ring_laplacian(n: int) -> np.ndarray:
    a = np.zeros((n, n))
    for c in range(n):
        a[c, (c + 1) % n] = a[(c + 1) % n, c] = 1.0
    return np.diag(a.sum(1)) - a


class QuadraticPredictor(eqx.Module):
    """``m_c = 10 − α ||u_c − t_c||² − β Σ_p (u_cp − u_{c+1,p})²`` in unit-box coordinates.

    Neighbours interact through the ring term. ``coverage`` and ``cell_edge_throughput_mbps``
    are constant (guardrails never bind). ``std`` is ``std0 + std_tilt · u_tilt²``.
    """

    target_u: jnp.ndarray  # [cells, params]
    alpha: jnp.ndarray
    beta: jnp.ndarray
    std0: jnp.ndarray
    std_tilt: jnp.ndarray

    def __init__(self, target_u, alpha=10.0, beta=2.0, std0=0.0, std_tilt=0.0):
        f = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
        self.target_u, self.alpha, self.beta = f(target_u), f(alpha), f(beta)
        self.std0, self.std_tilt = f(std0), f(std_tilt)

    def __call__(self, cm):
        u = SCHEMA.to_vector(SCHEMA.to_unit(cm))
        m = (
            10.0
            - self.alpha * jnp.sum((u - self.target_u) ** 2, -1)
            - self.beta * jnp.sum((u - jnp.roll(u, -1, axis=-2)) ** 2, -1)
        )
        s = self.std0 + self.std_tilt * u[..., 0] ** 2
        mean = {
            "dl_throughput_mbps": m,
            "coverage": jnp.full_like(m, 0.95),
            "cell_edge_throughput_mbps": jnp.full_like(m, 2.0),
        }
        std = {k: (s if k == "dl_throughput_mbps" else jnp.zeros_like(m)) for k in mean}
        return Prediction(mean, std)

    def objective(self, u: np.ndarray) -> float:
        """Mean over cells of ``m_c`` (numpy, float64)."""
        t = np.asarray(self.target_u, np.float64)
        alpha, beta = float(self.alpha), float(self.beta)
        m = 10 - alpha * ((u - t) ** 2).sum(-1) - beta * ((u - np.roll(u, -1, 0)) ** 2).sum(-1)
        return float(m.mean())

    def continuous_optimum_u(self) -> np.ndarray:
        """Unconstrained maximiser: ``(α I + β L) u = α t`` per parameter (ring Laplacian L)."""
        t = np.asarray(self.target_u, np.float64)
        alpha, beta = float(self.alpha), float(self.beta)
        a = alpha * np.eye(t.shape[0]) + beta * ring_laplacian(t.shape[0])
        return np.linalg.solve(a, alpha * t)

    def grid_optimum(self, current: dict, trust_steps: int) -> tuple[np.ndarray, float]:
        """Brute-force optimum over the grid trust region (parameters separate exactly)."""
        n, trust_steps = self.target_u.shape[0], int(trust_steps)
        best_x = np.zeros((n, len(SCHEMA)))
        for j, p in enumerate(SCHEMA.params):
            k0 = np.round((np.asarray(current[p.name]) - p.low) / p.step).astype(int)
            ranges = [
                range(max(0, k - trust_steps), min(p.n_steps, k + trust_steps) + 1) for k in k0
            ]
            best, arg = -np.inf, None
            t = np.asarray(self.target_u[:, j], np.float64)
            for ks in itertools.product(*ranges):
                x = p.low + np.asarray(ks) * p.step
                u = (x - p.low) / (p.high - p.low)
                val = (
                    -float(self.alpha) * ((u - t) ** 2).sum()
                    - float(self.beta) * ((u - np.roll(u, -1)) ** 2).sum()
                )
                if val > best:
                    best, arg = val, x
            best_x[:, j] = arg
        u = (best_x - np.array([p.low for p in SCHEMA.params])) / np.array(
            [p.high - p.low for p in SCHEMA.params]
        )
        return best_x, self.objective(u)
