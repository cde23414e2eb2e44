"""Site-specific channel corrections: what a Sionna RT sounding changes in an area's twin.

A virtual sounding of a site (`dtwin.rt.sound`, `dtwin.rt.fit.fit_site_channel`) gives a copy
of a TR 38.901 scenario with a pathloss offset and site-specific shadow-fading spreads
(`dtwin.rt.fit.to_scenario`). The network model uses exactly those three numbers of it (mean
pathloss, LOS and NLOS shadow-fading standard deviations), so `SiteChannel` keeps them as plain,
hashable floats: an `dtwin.areas.AreaType` can carry one (``area.with_site_channel(sc)``), every
network built for that area (`dtwin.areas.network_for_area`, hence sweeps and the field
stand-in) uses the site-specific scenario, and compiled sweep functions are still cached per
area. `save_site_channels` / `load_site_channels` store them as JSON, which is how the main job
hands the channel fitted by ``experiments.calibrate_materials`` to the twin.

This module does not import Sionna: a fitted channel can be used where Sionna RT is absent.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class SiteChannel:
    """Site-specific corrections of a TR 38.901 scenario (hashable).

    Attributes:
        scenario: name of the scenario they apply to (``UMa``, ``UMi``, ``RMa``).
        pathloss_offset_db: added to every basic pathloss (dB; positive = more loss than the
            TR 38.901 table at this site).
        los_sf_std_db: shadow-fading standard deviation of LOS links (dB).
        nlos_sf_std_db: shadow-fading standard deviation of NLOS links (dB).
        source: where the numbers come from (free text, e.g. ``"munich RT, calibrated"``).
        area: the area type (`dtwin.areas`) the site belongs to; ``""`` = any area of the
            scenario.
    """

    scenario: str
    pathloss_offset_db: float
    los_sf_std_db: float
    nlos_sf_std_db: float
    source: str = ""
    area: str = ""

    def __post_init__(self) -> None:
        for name in ("pathloss_offset_db", "los_sf_std_db", "nlos_sf_std_db"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"SiteChannel.{name} must be a finite number (dB), got {v!r}")
        if abs(self.pathloss_offset_db) > 60.0:
            raise ValueError(
                f"SiteChannel.pathloss_offset_db = {self.pathloss_offset_db} dB is implausible "
                "(|offset| > 60 dB): check the sounding"
            )
        for name in ("los_sf_std_db", "nlos_sf_std_db"):
            if not 0.0 <= getattr(self, name) <= 30.0:
                raise ValueError(
                    f"SiteChannel.{name} must be in [0, 30] dB, got {getattr(self, name)}"
                )

    @classmethod
    def from_scenario(cls, scenario: Any, *, source: str = "", area: str = "") -> SiteChannel:
        """Read the three corrections off a scenario pytree (e.g. `dtwin.rt.fit.to_scenario`)."""
        return cls(
            scenario=str(scenario.name),
            pathloss_offset_db=float(scenario.pathloss_offset_db),
            los_sf_std_db=float(scenario.los_lsp.sf_std_db),
            nlos_sf_std_db=float(scenario.nlos_lsp.sf_std_db),
            source=source,
            area=area,
        )

    def apply(self, scenario: Any) -> Any:
        """A copy of ``scenario`` with these corrections (raises on a scenario mismatch)."""
        if str(scenario.name) != self.scenario:
            raise ValueError(
                f"SiteChannel fitted for scenario {self.scenario!r} cannot be applied to "
                f"{scenario.name!r}"
            )
        f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return eqx.tree_at(
            lambda s: (s.pathloss_offset_db, s.los_lsp.sf_std_db, s.nlos_lsp.sf_std_db),
            scenario,
            (f32(self.pathloss_offset_db), f32(self.los_sf_std_db), f32(self.nlos_sf_std_db)),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def save_site_channels(path: str | Path, channels: Mapping[str, SiteChannel]) -> Path:
    """Write named site channels (e.g. ``{"twin": ..., "field": ...}``) as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v.to_dict() for k, v in channels.items()}, indent=2))
    return path


def load_site_channels(path: str | Path) -> dict[str, SiteChannel]:
    """Read the JSON written by `save_site_channels` (errors name the file and the entry)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"site channel file {path} does not exist (written by "
            "`python -m experiments.calibrate_materials`)"
        )
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object of named site channels")
    out = {}
    fields = {f.name for f in dataclasses.fields(SiteChannel)}
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: entry {name!r} is not an object")
        unknown = set(entry) - fields
        if unknown:
            raise ValueError(f"{path}: entry {name!r} has unknown field(s) {sorted(unknown)}")
        try:
            out[name] = SiteChannel(**entry)
        except TypeError as e:
            raise ValueError(f"{path}: entry {name!r}: {e}") from None
        except ValueError as e:
            raise ValueError(f"{path}: entry {name!r}: {e}") from None
    return out


__all__ = ["SiteChannel", "save_site_channels", "load_site_channels"]
