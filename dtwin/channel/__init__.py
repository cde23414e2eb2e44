"""TR 38.901 channel statistics as differentiable JAX functions.

Scenarios (parameter pytrees, every numeric parameter an array leaf): :class:`UMa`,
:class:`UMi` (Street Canyon), :class:`RMa`, :class:`InHOffice`, base :class:`AbstractScenario`.
Functions: pathloss (clause 7.4.1), LOS probability (7.4.2), O2I loss (7.4.3), shadow fading
and large-scale parameters (7.5 step 4). All work under ``jit``/``vmap``/``grad``.
"""

from ._inh import InHOffice
from ._rma import RMa
from ._scenario import LSP_ORDER, AbstractScenario, LSPParams
from ._uma import UMa, sample_uma_environment_height_m
from ._umi import UMi
from .los import los_probability
from .lsp import LSPs, lsp_log_statistics, sample_lsps, shadow_fading_std_db
from .o2i import o2i_building_loss_db, o2i_legacy_loss_db, o2i_loss_db
from .pathloss import pathloss_db, pathloss_los_db, pathloss_nlos_db

__all__ = [
    "AbstractScenario",
    "InHOffice",
    "LSPParams",
    "LSPs",
    "LSP_ORDER",
    "RMa",
    "UMa",
    "UMi",
    "los_probability",
    "lsp_log_statistics",
    "o2i_building_loss_db",
    "o2i_legacy_loss_db",
    "o2i_loss_db",
    "pathloss_db",
    "pathloss_los_db",
    "pathloss_nlos_db",
    "sample_lsps",
    "sample_uma_environment_height_m",
    "shadow_fading_std_db",
]
