"""sim2real: KPI surrogates, transfer from the Digital Twin to a commercial network, metrics.

Public API (see the submodules):

* data: `load_cells`, `load_measurements`, `ColumnRoles`, `DataError`, `DropReport`, `Cells`,
  `Measurements`, `DEMO_CELLS` (a bundled synthetic ``cells.csv``).
* graph / dataset: `neighbour_graph`, `NeighbourGraph`, `GraphBatch`, `build_batch`,
  `batch_from_arrays`, `split_snapshots`.
* surrogate / ensemble: `Surrogate`, `EnvironmentPart`, `ResponsePart`, `init_surrogate`,
  `env_filter`, `response_filter`, `predict_kpis`, `apply_parts`, `make_ensemble`, `predict`.
* transfer: `fit`, `METHODS`, `TransferConfig`, `pretrain_twin`, `train_ensemble`,
  `fit_response_gain`.
* cell levels: `fit_cell_levels`, `CellLevels` (each cell's persistent level from commercial data).
* metrics: `mape`, `mae`, `spearman`, `response_fidelity`, `auc`, `domain_similarity_pct`.
* checkpoint: `save_checkpoint`, `restore_checkpoint`, `latest_step`.
"""

from pathlib import Path

from .cell_levels import CellLevels, fit_cell_levels
from .checkpoint import Checkpoint, latest_step, restore_checkpoint, save_checkpoint
from .data import (
    AREA_TYPES,
    Cells,
    ColumnRoles,
    DataError,
    DropReport,
    Measurements,
    load_cells,
    load_measurements,
)
from .dataset import (
    GraphBatch,
    batch_from_arrays,
    build_batch,
    domain_features,
    is_log_target,
    split_snapshots,
)
from .ensemble import make_ensemble, member, predict, predict_members
from .graph import NeighbourGraph, neighbour_graph, sector_coupling_db
from .metrics import (
    ResponseFidelity,
    auc,
    domain_similarity_pct,
    mae,
    mape,
    response_fidelity,
    spearman,
)
from .surrogate import (
    EnvironmentPart,
    ResponsePart,
    Surrogate,
    apply_parts,
    env_filter,
    init_surrogate,
    predict_kpis,
    response_filter,
)
from .transfer import (
    METHODS,
    TransferConfig,
    fit,
    fit_response_gain,
    pretrain_twin,
    train_ensemble,
)

DEMO_CELLS = Path(__file__).resolve().parent / "demo" / "cells.csv"
"""A bundled synthetic ``cells.csv`` (metro, urban and suburban parts, hex-like layout)."""

__all__ = [
    "apply_parts",
    "AREA_TYPES",
    "DEMO_CELLS",
    "METHODS",
    "Cells",
    "CellLevels",
    "Checkpoint",
    "ColumnRoles",
    "DataError",
    "DropReport",
    "EnvironmentPart",
    "GraphBatch",
    "Measurements",
    "NeighbourGraph",
    "ResponseFidelity",
    "ResponsePart",
    "Surrogate",
    "TransferConfig",
    "auc",
    "batch_from_arrays",
    "build_batch",
    "domain_features",
    "domain_similarity_pct",
    "env_filter",
    "fit",
    "fit_cell_levels",
    "init_surrogate",
    "is_log_target",
    "latest_step",
    "load_cells",
    "load_measurements",
    "mae",
    "make_ensemble",
    "mape",
    "member",
    "neighbour_graph",
    "sector_coupling_db",
    "predict",
    "predict_kpis",
    "predict_members",
    "fit_response_gain",
    "pretrain_twin",
    "response_fidelity",
    "response_filter",
    "restore_checkpoint",
    "save_checkpoint",
    "spearman",
    "split_snapshots",
    "train_ensemble",
]
