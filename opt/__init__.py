"""CM optimisation through a differentiable predictor (surrogate ensemble or Digital Twin).

* `opt.objectives`: `Prediction`, the `Predictor` protocol, objectives (mean / cell-edge
  throughput, energy with QoS floor and EIRP limit).
* `opt.safety`: trust region, uncertainty penalty, guardrail KPIs, no-change rule, reasons.
* `opt.search`: multi-start projected gradient search + discrete refinement -> `Recommendation`.
* `opt.constrained`: augmented Lagrangian with projected optax steps.
* `opt.policy`: amortised CM selection policy trained through a predictor.
* `opt.baselines`: random search, coordinate descent, CMA-ES on the same budget.
* `opt.simulator`: the differentiable Digital Twin as a predictor (`SimulatorPredictor`,
  `twin_predictor`) and the surrogate anchored to the twin's CM response (`AnchoredPredictor`).
* `opt.calibration`: the twin simulation's per-cell strength fitted to the UE share each cell
  serves in commercial counters (`cell_ue_share`, `calibrate_power_offsets`).
"""

from .baselines import CMAState, cma_es, cma_es_minimise, coordinate_descent, random_search
from .calibration import CalibrationResult, calibrate_power_offsets, cell_ue_share
from .constrained import ALResult, augmented_lagrangian, projected_steps
from .objectives import (
    AbstractObjective,
    EnergyObjective,
    KPIObjective,
    Prediction,
    Predictor,
    cell_edge_throughput,
    mean_throughput,
    total_power_w,
)
from .policy import CMPolicy, policy_cm, policy_recommend, train_policy
from .predictor import (
    EnsemblePredictor,
    context_weight,
    ensemble_predictor,
    predict_candidates,
)
from .safety import (
    AREA_GUARDRAILS,
    DEFAULT_GUARDRAILS,
    REASON_NAMES,
    GridBox,
    Guardrail,
    Reason,
    SafetyConfig,
    enforce_safety,
    grid_box,
    guardrail_violation,
    no_change_mask,
    safe_score,
    std_excess,
    trust_region,
)
from .search import (
    Recommendation,
    SearchConfig,
    coordinate_refine,
    prefer_current,
    recommendation_to_rows,
    search,
    search_areas,
)
from .simulator import AnchoredPredictor, SimulatorPredictor, twin_predictor

__all__ = [
    "CalibrationResult",
    "calibrate_power_offsets",
    "cell_ue_share",
    "AnchoredPredictor",
    "SimulatorPredictor",
    "twin_predictor",
    "EnsemblePredictor",
    "ensemble_predictor",
    "context_weight",
    "predict_candidates",
    "ALResult",
    "AbstractObjective",
    "CMAState",
    "CMPolicy",
    "AREA_GUARDRAILS",
    "DEFAULT_GUARDRAILS",
    "EnergyObjective",
    "GridBox",
    "Guardrail",
    "KPIObjective",
    "Prediction",
    "Predictor",
    "REASON_NAMES",
    "Reason",
    "Recommendation",
    "SafetyConfig",
    "SearchConfig",
    "augmented_lagrangian",
    "cell_edge_throughput",
    "cma_es",
    "cma_es_minimise",
    "coordinate_descent",
    "coordinate_refine",
    "enforce_safety",
    "grid_box",
    "guardrail_violation",
    "mean_throughput",
    "no_change_mask",
    "policy_cm",
    "policy_recommend",
    "prefer_current",
    "projected_steps",
    "random_search",
    "recommendation_to_rows",
    "safe_score",
    "search",
    "search_areas",
    "std_excess",
    "total_power_w",
    "train_policy",
    "trust_region",
]
