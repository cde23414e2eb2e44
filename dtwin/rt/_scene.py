"""`RTScene`: a loaded Sionna RT scene plus the path-solver settings used by the JAX bridge.

The scene is loaded once, when the `RTScene` is created, and reused by every call of
`rt_paths` / `rt_path_gains` that is given it: the object *is* the scene cache, held by the user
and passed explicitly (no module-level state).

Antennas are single isotropic, vertically polarised elements at both ends (0 dBi), so the path
gain of a link is the channel gain of the propagation environment alone; antenna patterns and
tilts are applied on the JAX side (`dtwin.antenna`).
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass

import numpy as np

from dtwin._llvm import import_sionna_rt

MATERIAL_FIELDS: tuple[str, ...] = (
    "relative_permittivity",
    "conductivity",
    "scattering_coefficient",
    "thickness",
)
"""Material properties the bridge can set and differentiate (names of Sionna's
`RadioMaterial` properties; conductivity in S/m, thickness in m, the others unitless)."""


@dataclass(frozen=True)
class SolverConfig:
    """Static settings of `sionna.rt.PathSolver` (hashable, so usable as a cache key).

    Attributes:
        max_depth: maximum number of interactions per path.
        samples_per_src: rays launched per transmitter by the candidate generator.
        max_num_paths: paths kept per link; the output path axis has this fixed length (padded
            with invalid paths). When more are found, the ones with the shortest delay are kept
            (a material-independent choice, so gradients stay consistent).
        los, specular_reflection, diffuse_reflection, refraction, diffraction: interaction types.
        seed: seed of the (deterministic) candidate generator.
    """

    max_depth: int = 2
    samples_per_src: int = 10_000
    max_num_paths: int = 16
    los: bool = True
    specular_reflection: bool = True
    diffuse_reflection: bool = False
    refraction: bool = False
    diffraction: bool = False
    seed: int = 1

    def __post_init__(self):
        if self.max_depth < 0:
            raise ValueError(f"SolverConfig.max_depth must be >= 0, got {self.max_depth}")
        if self.samples_per_src < 1:
            raise ValueError(
                f"SolverConfig.samples_per_src must be >= 1, got {self.samples_per_src}"
            )
        if self.max_num_paths < 1:
            raise ValueError(f"SolverConfig.max_num_paths must be >= 1, got {self.max_num_paths}")


class RTScene:
    """A Sionna RT scene loaded once, with the solver settings and carrier frequency.

    Create with `RTScene.from_file` (a path or the name of a scene bundled with Sionna, e.g.
    ``"simple_street_canyon"``, ``"munich"``, ``"etoile"``) or `RTScene.flat_ground`, then pass
    it as ``scene=`` to `dtwin.rt.rt_paths`. Not a pytree: it is static configuration, closed
    over by jitted callers.

    Args:
        sionna_scene: a loaded `sionna.rt.Scene` (ownership passes to this object: its
            transmitters/receivers and material properties are set by the bridge).
        carrier_hz: carrier frequency in Hz; the ITU materials' default properties are
            evaluated at it (ITU-R P.2040 Table 3).
        config: path-solver settings.
    """

    def __init__(
        self, sionna_scene, *, carrier_hz: float = 3.5e9, config: SolverConfig | None = None
    ):
        if not (carrier_hz > 0):
            raise ValueError(f"carrier_hz must be positive, got {carrier_hz}")
        rt = import_sionna_rt()
        import mitsuba as mi  # noqa: F401  (variant set by sionna.rt)

        self._rt = rt
        self.scene = sionna_scene
        self.carrier_hz = float(carrier_hz)
        self.config = config if config is not None else SolverConfig()
        self.scene.frequency = self.carrier_hz
        iso = dict(num_rows=1, num_cols=1, pattern="iso", polarization="V")
        self.scene.tx_array = rt.PlanarArray(**iso)
        self.scene.rx_array = rt.PlanarArray(**iso)
        for name in list(self.scene.transmitters):
            self.scene.remove(name)
        for name in list(self.scene.receivers):
            self.scene.remove(name)
        self.solver = rt.PathSolver(deterministic=True)
        self.solver.loop_mode = "evaluated"  # needed for reverse-mode AD on the CPU
        self.lock = threading.Lock()
        self._defaults = {
            name: {f: float(getattr(mat, f)[0]) for f in MATERIAL_FIELDS}
            for name, mat in self.scene.radio_materials.items()
            if all(hasattr(mat, f) for f in MATERIAL_FIELDS)
        }
        if not self._defaults:
            raise ValueError("the scene has no radio material with adjustable properties")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_file(
        cls, scene: str, *, carrier_hz: float = 3.5e9, config: SolverConfig | None = None
    ):
        """Load a Mitsuba/Sionna XML scene file, or a scene bundled with Sionna by name.

        Args:
            scene: path to an XML file, or a bundled name (``sionna.rt.scene.<name>``).
            carrier_hz, config: see `RTScene`.
        """
        rt = import_sionna_rt()
        path = scene
        if not os.path.exists(path):
            bundled = getattr(rt.scene, scene, None)
            if not isinstance(bundled, str) or not bundled.endswith(".xml"):
                raise ValueError(
                    f"scene {scene!r} is neither an existing file nor a scene bundled with "
                    "Sionna RT (e.g. 'simple_street_canyon', 'munich', 'etoile', 'floor_wall')"
                )
            path = bundled
        return cls(rt.load_scene(path, merge_shapes=True), carrier_hz=carrier_hz, config=config)

    @classmethod
    def flat_ground(
        cls,
        *,
        half_size_m: float = 5_000.0,
        itu_type: str = "concrete",
        thickness_m: float = 10.0,
        carrier_hz: float = 3.5e9,
        config: SolverConfig | None = None,
    ):
        """A single square ground plane z = 0 of ITU material ``itu_type`` named ``"ground"``.

        The default 10 m slab thickness makes the ground an electrical half-space (the wave
        inside decays long before it returns), i.e. plain Fresnel reflection.

        Used to check the tracer against the closed-form two-ray model.
        """
        if half_size_m <= 0:
            raise ValueError(f"half_size_m must be positive, got {half_size_m}")
        rt = import_sionna_rt()
        s = float(half_size_m)
        ply = (
            "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\n"
            "property float z\nelement face 2\nproperty list uchar int vertex_indices\nend_header\n"
            f"{-s} {-s} 0\n{s} {-s} 0\n{s} {s} 0\n{-s} {s} 0\n3 0 1 2\n3 0 2 3\n"
        )
        with tempfile.TemporaryDirectory() as tmp:
            ply_path = os.path.join(tmp, "ground.ply")
            with open(ply_path, "w") as f:
                f.write(ply)
            xml = (
                '<scene version="2.1.0">'
                '<bsdf type="itu-radio-material" id="ground">'
                f'<string name="type" value="{itu_type}"/>'
                f'<float name="thickness" value="{float(thickness_m)}"/></bsdf>'
                f'<shape type="ply" id="mesh-ground"><string name="filename" value="{ply_path}"/>'
                '<boolean name="face_normals" value="true"/><ref id="ground" name="bsdf"/></shape>'
                "</scene>"
            )
            sionna_scene = rt.load_scene_from_string(xml)
        return cls(sionna_scene, carrier_hz=carrier_hz, config=config)

    # ------------------------------------------------------------------ materials
    @property
    def material_names(self) -> tuple[str, ...]:
        """Names of the scene's adjustable radio materials."""
        return tuple(self._defaults)

    def default_material_params(self, fields: tuple[str, ...] = MATERIAL_FIELDS[:3]) -> dict:
        """The scene's material properties at ``carrier_hz`` as a nested dict of float32 scalars.

        Returns:
            ``{material: {field: np.float32}}`` for every material and the requested ``fields``
            (default: relative permittivity, conductivity [S/m], scattering coefficient).
        """
        for f in fields:
            if f not in MATERIAL_FIELDS:
                raise ValueError(f"unknown material field {f!r}; expected one of {MATERIAL_FIELDS}")
        return {m: {f: np.float32(v[f]) for f in fields} for m, v in self._defaults.items()}

    def check_material_params(self, params: dict) -> list[tuple[str, str]]:
        """Validate the structure of a material-parameter dict; return its (material, field) keys.

        Raises:
            ValueError: naming the unknown material or field.
        """
        if not isinstance(params, dict):
            raise ValueError(
                "material_params must be a dict {material: {field: scalar}}, got "
                f"{type(params).__name__}"
            )
        keys = []
        for m in sorted(params):
            if m not in self._defaults:
                raise ValueError(
                    f"material_params: unknown material {m!r}; the scene has {self.material_names}"
                )
            if not isinstance(params[m], dict):
                raise ValueError(f"material_params[{m!r}] must be a dict {{field: scalar}}")
            for f in sorted(params[m]):
                if f not in MATERIAL_FIELDS:
                    raise ValueError(
                        f"material_params[{m!r}]: unknown field {f!r}; "
                        f"expected one of {MATERIAL_FIELDS}"
                    )
                keys.append((m, f))
        return keys

    def set_materials(self, keys, values, *, enable_grad: bool = False) -> list:
        """Reset every material to its defaults, then set ``keys`` to ``values`` (host side).

        Returns:
            The Dr.Jit variables set for ``keys`` (with gradients enabled if requested).
        """
        import drjit as dr
        import mitsuba as mi

        mats = self.scene.radio_materials
        for m, d in self._defaults.items():
            for f, v in d.items():
                setattr(mats[m], f, mi.Float(v))
                # opaque: a new value is a kernel input, not a literal that forces a recompile
                dr.make_opaque(getattr(mats[m], f))
        out = []
        for (m, f), v in zip(keys, np.asarray(values, dtype=np.float64).ravel(), strict=True):
            if not np.isfinite(v):
                raise ValueError(f"material_params[{m!r}][{f!r}] is not finite ({v})")
            try:
                setattr(mats[m], f, mi.Float(float(v)))
            except ValueError as e:
                raise ValueError(f"material_params[{m!r}][{f!r}] = {v}: {e}") from e
            var = getattr(mats[m], f)
            dr.make_opaque(var)
            if enable_grad:
                dr.enable_grad(var)
            out.append(var)
        return out

    def set_devices(self, tx_positions_m: np.ndarray, rx_positions_m: np.ndarray) -> None:
        """Place ``tx0..`` and ``rx0..`` at the given [n, 3] positions (host side)."""
        import mitsuba as mi

        rt = self._rt
        for kind, pos, cls_ in (
            ("tx", tx_positions_m, rt.Transmitter),
            ("rx", rx_positions_m, rt.Receiver),
        ):
            devices = self.scene.transmitters if kind == "tx" else self.scene.receivers
            n = pos.shape[0]
            for i in range(n):
                name = f"{kind}{i}"
                p = mi.Point3f(*(float(c) for c in pos[i]))
                if name in devices:
                    devices[name].position = p
                else:
                    self.scene.add(cls_(name, position=p))
            i = n
            while f"{kind}{i}" in devices:
                self.scene.remove(f"{kind}{i}")
                i += 1

    def trace(self):
        """Run the path solver with this scene's `SolverConfig`; returns `sionna.rt.Paths`."""
        c = self.config
        return self.solver(
            self.scene,
            max_depth=c.max_depth,
            max_num_paths_per_src=max(1_000_000, c.max_num_paths),
            samples_per_src=c.samples_per_src,
            los=c.los,
            specular_reflection=c.specular_reflection,
            diffuse_reflection=c.diffuse_reflection,
            refraction=c.refraction,
            diffraction=c.diffraction,
            seed=c.seed,
        )

    def __repr__(self) -> str:
        return (
            f"RTScene(materials={self.material_names}, carrier_hz={self.carrier_hz:g}, "
            f"config={self.config})"
        )
