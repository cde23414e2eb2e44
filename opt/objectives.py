"""What CM optimisation maximises: predictions of per-cell KPIs and objectives over them.

The optimisers in :mod:`opt` work through any differentiable **predictor**, a callable
``predict(cm) -> Prediction`` mapping a CM (``dict[str, Float[Array, "cells"]]``, see
:mod:`dtwin.cm`) to per-cell KPI means and their epistemic uncertainty (e.g. the spread of a
deep ensemble; zero for the Digital Twin used as an oracle). An objective turns a prediction into
a per-cell *utility* ``u_c`` and its standard deviation ``s_c``; the scalar objective is the
weighted mean

    V_κ = Σ_c w_c (u_c − κ s_c) / Σ_c w_c,

with ``κ ≥ 0`` the uncertainty penalty (κ = 0: the plain mean). Objectives may add inequality
constraints ``g(pred, cm) ≤ 0`` (normalised, dimensionless), solved by the augmented Lagrangian of
:mod:`opt.constrained` during the gradient search and by an exact penalty in the discrete phase.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

CM = dict[str, Float[Array, " cells"]]


class Prediction(eqx.Module):
    """Per-cell KPI prediction with epistemic uncertainty.

    Attributes:
        mean: KPI name (``dtwin.schema.TARGET_COLUMNS``, e.g. ``dl_throughput_mbps``) -> mean
            per cell, in the KPI's unit.
        std: KPI name -> standard deviation per cell (same unit); same keys as ``mean``.
    """

    mean: dict[str, Float[Array, " cells"]]
    std: dict[str, Float[Array, " cells"]]

    @classmethod
    def deterministic(cls, mean: Mapping[str, Array]) -> Prediction:
        """A prediction without uncertainty (``std = 0``), e.g. from the Digital Twin."""
        mean = {k: jnp.asarray(v, jnp.float32) for k, v in mean.items()}
        return cls(mean, {k: jnp.zeros_like(v) for k, v in mean.items()})


Predictor = Callable[[CM], Prediction]
"""``predict(cm) -> Prediction``: any differentiable map from a CM to per-cell KPI predictions.

To vectorise the optimisers over areas (`opt.search_areas`), make the predictor an
`equinox.Module` whose array leaves carry a leading area axis (e.g. per-area state features)."""


def _kpi(pred: Prediction, kpi: str) -> tuple[Float[Array, " cells"], Float[Array, " cells"]]:
    if kpi not in pred.mean:
        raise ValueError(f"objective needs KPI {kpi!r}; the prediction has {sorted(pred.mean)}")
    return pred.mean[kpi], pred.std.get(kpi, jnp.zeros_like(pred.mean[kpi]))


def total_power_w(cm: Mapping[str, Array]) -> Float[Array, ""]:
    """Total transmit power of the area in watts: ``Σ_c 10^((P_c − 30)/10)``, ``P_c`` in dBm."""
    return jnp.sum(10.0 ** ((jnp.asarray(cm["tx_power_dbm"]) - 30.0) / 10.0))


class AbstractObjective(eqx.Module):
    """An objective to *maximise*: per-cell utility, its uncertainty, and optional constraints."""

    @abc.abstractmethod
    def utility(
        self, pred: Prediction, cm: Mapping[str, Array]
    ) -> tuple[Float[Array, " cells"], Float[Array, " cells"]]:
        """Per-cell utility ``u_c`` and its standard deviation ``s_c`` (same unit)."""

    def cell_weights(self, n_cells: int) -> Float[Array, " cells"]:
        """Weights ``w_c`` of the cells in the mean (default: equal)."""
        return jnp.ones((n_cells,), jnp.float32)

    def constraints(self, pred: Prediction, cm: Mapping[str, Array]) -> Float[Array, " m"]:
        """Normalised inequality constraints ``g ≤ 0`` (default: none)."""
        del pred, cm
        return jnp.zeros((0,), jnp.float32)

    def value(
        self, pred: Prediction, cm: Mapping[str, Array], kappa: float = 0.0
    ) -> Float[Array, ""]:
        """``V_κ = Σ_c w_c (u_c − κ s_c) / Σ_c w_c`` (the uncertainty-penalised objective)."""
        u, s = self.utility(pred, cm)
        w = self.cell_weights(u.shape[-1])
        return jnp.sum(w * (u - kappa * s)) / jnp.sum(w)


class KPIObjective(AbstractObjective):
    """Maximise the (optionally traffic-weighted) mean over cells of one KPI.

    Attributes:
        kpi: KPI name, e.g. ``dl_throughput_mbps`` or ``cell_edge_throughput_mbps``.
        weights: per-cell weights (e.g. offered load in Mbps), or None for equal weights.
    """

    kpi: str = eqx.field(static=True, default="dl_throughput_mbps")
    weights: Float[Array, " cells"] | None = None

    def utility(self, pred, cm):
        return _kpi(pred, self.kpi)

    def cell_weights(self, n_cells):
        if self.weights is None:
            return jnp.ones((n_cells,), jnp.float32)
        return jnp.broadcast_to(jnp.asarray(self.weights, jnp.float32), (n_cells,))


def mean_throughput(weights: Float[Array, " cells"] | None = None) -> KPIObjective:
    """Mean DL user throughput over cells (the default objective); ``weights``: traffic weights."""
    return KPIObjective("dl_throughput_mbps", weights)


def cell_edge_throughput(weights: Float[Array, " cells"] | None = None) -> KPIObjective:
    """Mean over cells of the 5th-percentile (cell-edge) DL user throughput."""
    return KPIObjective("cell_edge_throughput_mbps", weights)


class EnergyObjective(AbstractObjective):
    """Minimise total transmit power subject to a QoS floor and an EIRP (exposure) limit.

    Utility of cell c is ``−P_c`` in watts (``P_c = 10^((tx_power_dbm_c − 30)/10)``), so that
    ``V_0 = −total power / n_cells``. Constraints (``g ≤ 0``), per cell:

    * QoS: ``(floor_c − (m_c − κ_q s_c)) / floor_c ≤ 0`` with ``m_c, s_c`` the predicted mean and
      std of ``qos_kpi`` (Mbps) and ``κ_q = qos_kappa`` (a confidence margin);
    * EIRP: ``tx_power_dbm_c + antenna_gain_dbi_c − max_eirp_dbm ≤ 0`` (in dB).

    Attributes:
        qos_floor_mbps: throughput floor per cell (scalar or ``[cells]``), Mbps, > 0.
        max_eirp_dbm: EIRP limit (dBm), scalar or ``[cells]``.
        antenna_gain_dbi: antenna gain toward the exposure point (dBi), scalar or ``[cells]``.
        qos_kpi: KPI the floor applies to.
        qos_kappa: number of standard deviations of margin on the QoS floor.
    """

    qos_floor_mbps: Float[Array, "..."]
    max_eirp_dbm: Float[Array, "..."]
    antenna_gain_dbi: Float[Array, "..."]
    qos_kpi: str = eqx.field(static=True, default="dl_throughput_mbps")
    qos_kappa: float = eqx.field(static=True, default=0.0)

    def __init__(
        self,
        qos_floor_mbps,
        max_eirp_dbm=1e9,
        antenna_gain_dbi=0.0,
        qos_kpi: str = "dl_throughput_mbps",
        qos_kappa: float = 0.0,
    ):
        if not any(isinstance(v, jax.core.Tracer) for v in (qos_floor_mbps, antenna_gain_dbi)):
            floor = np.asarray(qos_floor_mbps, np.float64)
            if not np.all(np.isfinite(floor) & (floor > 0)):
                raise ValueError(
                    f"EnergyObjective: qos_floor_mbps must be finite and > 0, got {floor}"
                )
            if not np.all(np.isfinite(np.asarray(antenna_gain_dbi, np.float64))):
                raise ValueError("EnergyObjective: antenna_gain_dbi must be finite")
        self.qos_floor_mbps = jnp.asarray(qos_floor_mbps, jnp.float32)
        self.max_eirp_dbm = jnp.asarray(max_eirp_dbm, jnp.float32)
        self.antenna_gain_dbi = jnp.asarray(antenna_gain_dbi, jnp.float32)
        self.qos_kpi = qos_kpi
        self.qos_kappa = float(qos_kappa)

    def utility(self, pred, cm):
        p_w = 10.0 ** ((jnp.asarray(cm["tx_power_dbm"]) - 30.0) / 10.0)
        return -p_w, jnp.zeros_like(p_w)

    def constraints(self, pred, cm):
        m, s = _kpi(pred, self.qos_kpi)
        floor = jnp.broadcast_to(self.qos_floor_mbps, m.shape)
        g_qos = (floor - (m - self.qos_kappa * s)) / jnp.maximum(floor, 1e-6)
        eirp = jnp.asarray(cm["tx_power_dbm"]) + self.antenna_gain_dbi
        g_eirp = jnp.broadcast_to(eirp - self.max_eirp_dbm, m.shape)
        return jnp.concatenate([g_qos, g_eirp])


__all__ = [
    "AbstractObjective",
    "EnergyObjective",
    "KPIObjective",
    "Prediction",
    "Predictor",
    "cell_edge_throughput",
    "mean_throughput",
    "total_power_w",
]
