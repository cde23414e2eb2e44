"""The results report: ``results/report.html`` (self-contained) and its Markdown twin ``report.md``.

One section per experiment, in the order of :data:`EXPERIMENTS` followed by any other
``results/*.json``: its title, what it shows, its key numbers as tables read from its JSON, and
its figures (every ``results/<name>*.png``; PNGs are embedded as base64 in the HTML and linked
in the Markdown). An experiment whose JSON is missing gets a section that says "not run".

The numbers are found generically by walking the JSON: under ``results`` when the file has that
key (the layout of `experiments.meta.write_result`), else the whole file minus the metadata
(``config``, ``machine``, ``versions``...). Top-level scalars form one table; a nested dict of
dicts with shared keys forms a 2-D table (rows = outer keys); any other nested dict is flattened
to dotted keys. Long lists are left out (they belong in figures).

    python -m experiments.report [--results results] [--title "..."]
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXPERIMENTS: dict[str, tuple[str, str]] = {
    "main": (
        "End-to-end pipeline",
        "Twin sweep, stand-in commercial data, Sim2Real training and CM recommendations in one "
        "run: the numbers each stage reports.",
    ),
    "table1": (
        "Table 1: transfer methods compared",
        "KPI-prediction error (MAPE), response fidelity and domain similarity of every transfer "
        "method (commercial-only, twin-only, fine-tuning, L2-SP, EWC, DANN, Sim2Real) on the "
        "field stand-in.",
    ),
    "figure4": (
        "Figure 4: response curves in and out of the explored range",
        "Predicted vs true KPI response to one CM parameter, inside and outside the CM range that "
        "the commercial data explores.",
    ),
    "scarcity": (
        "Data scarcity",
        "Prediction error as a function of the amount of commercial data, per transfer method.",
    ),
    "field_trial": (
        "Field trial (stand-in)",
        "KPI gain when the recommended CMs are applied to the field stand-in, against the "
        "current CM and the baselines, with the safety rules' decisions.",
    ),
    "response_curve": (
        "Response curves",
        "Twin, field and surrogate KPI responses to single CM parameters.",
    ),
    "calibration_38901": (
        "TR 38.901 large-scale calibration",
        "Coupling loss and geometry SINR percentiles of our channel model against Sionna 2.2 and "
        "the 3GPP companies of R1-165974 (UMa/UMi at 6 and 30 GHz).",
    ),
    "calibrate_materials": (
        "Material calibration through Sionna RT",
        "Recovering hidden material properties by gradient descent through the ray tracer, from "
        "per-position path gains and from per-cell aggregates; held-out RSRP error before/after.",
    ),
    "proxy_vs_real": (
        "Throughput proxy on real 5G data",
        "Held-out error of the link-level throughput proxies on the UCC 5G production traces, "
        "against per-SNR-bin and global-median baselines.",
    ),
    "ue_behaviour": (
        "UE behaviour model",
        "Conditional VAE of UE mobility and demand trained on real traces, day-ahead demand "
        "prediction, and the closed-loop refinement through the twin.",
    ),
    "bench_channel": (
        "Benchmark: channel model",
        "Throughput of the TR 38.901 large-scale channel model on this machine.",
    ),
    "bench_sweep": (
        "Benchmark: twin sweep",
        "Snapshots per second of the CM-response sweep (jit + vmap, sharded over devices).",
    ),
    "bench_opt": (
        "Benchmark: CM optimisation",
        "Latency of the gradient CM search for about 1,000 cells, compile time apart.",
    ),
    "bench_summary": (
        "Benchmarks: summary",
        "Every bench_*.py run by experiments.bench_all: exit status, wall time, key timings.",
    ),
}
"""Known experiments: name -> (title, what it shows). Their sections appear even when not run."""

META_KEYS = frozenset(
    {
        "experiment",
        "config",
        "seed",
        "machine",
        "versions",
        "git_commit",
        "git_commit_at_finish",
        "wall_time_s",
        "finished_utc",
    }
)
"""Top-level keys of a result file that are run metadata, not results."""

_MAX_ROWS = 40
_MAX_COLS = 10
_MAX_LIST = 8


@dataclass(frozen=True)
class Table:
    """A captioned table of formatted cells."""

    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Section:
    """One experiment's part of the report (``record`` is None when its JSON is missing)."""

    name: str
    title: str
    description: str
    record: dict[str, Any] | None
    tables: tuple[Table, ...]
    figures: tuple[Path, ...]
    error: str | None = None


# --------------------------------------------------------------------------- JSON walking
def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _short_list(v: Any) -> bool:
    return isinstance(v, list) and len(v) <= _MAX_LIST and all(_is_scalar(x) for x in v)


def fmt(v: Any) -> str:
    """A cell: floats to 4 significant digits, short lists inline, None as an em dash."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    return str(v)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys -> scalar (or short list) values; long lists are dropped."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        elif _is_scalar(v) or _short_list(v):
            out[key] = v
    return out


def _matrix(name: str, d: Mapping[str, Any]) -> Table | None:
    """A 2-D table when every value of ``d`` is a dict whose flattened keys overlap."""
    if len(d) < 2 or not all(isinstance(v, Mapping) for v in d.values()):
        return None
    flat = {k: _flatten(v) for k, v in d.items()}
    if not all(flat.values()):
        return None
    columns: list[str] = []
    for f in flat.values():
        columns += [c for c in f if c not in columns]
    shared = [c for c in columns if sum(c in f for f in flat.values()) >= max(2, len(flat) // 2)]
    if not shared:
        return None
    shared = shared[:_MAX_COLS]
    rows = tuple(
        (str(k), *(fmt(f.get(c)) for c in shared)) for k, f in list(flat.items())[:_MAX_ROWS]
    )
    return Table(name, ("", *shared), rows)


def result_part(record: Mapping[str, Any]) -> dict[str, Any]:
    """The results of a record: its ``results`` dict when present, else all non-metadata keys."""
    res = record.get("results")
    if isinstance(res, Mapping):
        extra = {k: v for k, v in record.items() if k not in META_KEYS and k != "results"}
        return {**extra, **res}
    return {k: v for k, v in record.items() if k not in META_KEYS}


def key_tables(record: Mapping[str, Any]) -> list[Table]:
    """The tables of key numbers of one result record (see the module docstring)."""
    res = result_part(record)
    tables: list[Table] = []
    top = [(k, v) for k, v in res.items() if _is_scalar(v) or _short_list(v)]
    if top:
        tables.append(
            Table("Key numbers", ("quantity", "value"), tuple((k, fmt(v)) for k, v in top))
        )
    for k, v in res.items():
        if not isinstance(v, Mapping) or not v:
            continue
        t = _matrix(k, v)
        if t is None:
            flat = list(_flatten(v).items())
            if not flat:
                continue
            rows = tuple((fk, fmt(fv)) for fk, fv in flat[:_MAX_ROWS])
            if len(flat) > _MAX_ROWS:
                rows += ((f"... {len(flat) - _MAX_ROWS} more in the JSON", ""),)
            t = Table(k, ("quantity", "value"), rows)
        tables.append(t)
    return tables


def run_table(record: Mapping[str, Any]) -> Table:
    """Seed, wall time, devices, platform and main versions of a run (what is recorded)."""
    machine = record.get("machine") if isinstance(record.get("machine"), Mapping) else {}
    versions = record.get("versions") if isinstance(record.get("versions"), Mapping) else {}
    rows = [
        ("seed", fmt(record.get("seed"))),
        ("wall time (s)", fmt(record.get("wall_time_s"))),
        ("devices", fmt(machine.get("devices", machine.get("jax_devices")))),
        ("CPU", fmt(machine.get("cpu_model", machine.get("processor")))),
        ("platform", fmt(machine.get("platform"))),
        ("finished (UTC)", fmt(record.get("finished_utc"))),
        ("git commit", fmt(record.get("git_commit"))),
    ]
    if record.get("git_commit_at_finish") is not None:
        rows.append(("git commit at finish", fmt(record.get("git_commit_at_finish"))))
    for pkg in ("jax", "equinox", "optax", "sionna-rt"):
        v = versions.get(pkg, machine.get(pkg))
        if v is not None:
            rows.append((pkg, fmt(v)))
    config = record.get("config")
    if isinstance(config, Mapping):
        small = config.get("small")
        if small is not None:
            rows.append(("CI-sized run (--small)", fmt(small)))
    return Table("Run", ("", ""), tuple(r for r in rows if r[1] not in ("—", "")))


# --------------------------------------------------------------------------- collecting
def _figure_owner(png: Path, names: list[str]) -> str | None:
    """The experiment a PNG belongs to: the longest name that prefixes its file name."""
    best = None
    for n in names:
        if png.stem == n or png.stem.startswith(n + "_") or png.stem.startswith(n + "-"):
            if best is None or len(n) > len(best):
                best = n
    return best


def collect(results_dir: str | Path) -> list[Section]:
    """One `Section` per known experiment and per other JSON file in ``results_dir``."""
    results_dir = Path(results_dir)
    found = sorted(results_dir.glob("*.json")) if results_dir.is_dir() else []
    # ``<name>_small.json`` (a CI-sized run written under its own name) stands in for a missing
    # ``<name>.json`` of the same experiment.
    small = {p.stem[: -len("_small")] for p in found if p.stem.endswith("_small")}
    names = list(EXPERIMENTS) + [p.stem for p in found if p.stem not in EXPERIMENTS]
    names = [n for n in names if not (n.endswith("_small") and n[: -len("_small")] in names)]
    names += [n for n in sorted(small) if n not in names]
    pngs = sorted(results_dir.glob("*.png")) if results_dir.is_dir() else []
    figures: dict[str, list[Path]] = {n: [] for n in names}
    for p in pngs:
        owner = _figure_owner(p, names)
        if owner is not None:
            figures[owner].append(p)
    sections = []
    for name in names:
        title, description = EXPERIMENTS.get(name, (name, ""))
        path = results_dir / f"{name}.json"
        if not path.is_file() and name in small:
            path = results_dir / f"{name}_small.json"
            title += " (CI-sized run)"
        record, tables, error = None, (), None
        if path.is_file():
            try:
                record = json.loads(path.read_text())
                if not isinstance(record, dict):
                    raise ValueError("top level is not a JSON object")
                tables = (run_table(record), *key_tables(record))
            except (ValueError, OSError) as e:
                record, error = None, f"{path.name} could not be read: {e}"
        sections.append(
            Section(name, title, description, record, tuple(tables), tuple(figures[name]), error)
        )
    return sections


# --------------------------------------------------------------------------- rendering
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0 1.2em}caption{text-align:left;font-weight:600}
td,th{border:1px solid #ccc;padding:2px 8px;font-size:90%;text-align:right}
td:first-child{text-align:left}.notrun{color:#a33;font-style:italic}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}nav li{display:inline;margin-right:1em}
"""


def _html_table(t: Table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in t.rows)
    return f"<table><caption>{e(t.caption)}</caption><tr>{head}</tr>{body}</table>"


def render_html(sections: list[Section], title: str) -> str:
    """The self-contained HTML page (figures inlined as base64 PNG data URLs)."""
    e = html.escape
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{e(title)}</h1><nav><ul>"
    ]
    for s in sections:
        status = "" if s.record is not None else " (not run)"
        parts.append(f"<li><a href='#{e(s.name)}'>{e(s.title)}</a>{status}</li>")
    parts.append("</ul></nav>")
    for s in sections:
        parts.append(f"<section id='{e(s.name)}'><h2>{e(s.title)}</h2>")
        parts.append(f"<p>{e(s.description)} <code>experiments/{e(s.name)}</code></p>")
        if s.record is None:
            msg = s.error or f"not run: results/{s.name}.json is missing"
            parts.append(f"<p class='notrun'>{e(msg)}</p>")
        parts.extend(_html_table(t) for t in s.tables)
        for fig in s.figures:
            data = base64.b64encode(fig.read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img alt='{e(fig.name)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{e(fig.name)}</figcaption></figure>"
            )
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> str:
    lines = [f"**{_md_cell(t.caption)}**", ""]
    lines.append("| " + " | ".join(_md_cell(h) or " " for h in t.header) + " |")
    lines.append("|" + "|".join("---" for _ in t.header) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in t.rows]
    return "\n".join(lines) + "\n"


def render_markdown(sections: list[Section], title: str) -> str:
    """The Markdown twin (figures linked by file name, relative to the results directory)."""
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.title}", "", f"{s.description} (`experiments/{s.name}`)", ""]
        if s.record is None:
            out += [f"*{s.error or f'not run: results/{s.name}.json is missing'}*", ""]
        out += [_md_table(t) for t in s.tables]
        out += [f"![{f.name}]({f.name})\n" for f in s.figures]
    return "\n".join(out)


def build_report(
    results_dir: str | Path = "results", title: str = "Sim2Real for cellular networks: results"
) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``results_dir`` (created if missing).

    Returns:
        The paths of the HTML and Markdown files.
    """
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    sections = collect(results_dir)
    html_path, md_path = results_dir / "report.html", results_dir / "report.md"
    html_path.write_text(render_html(sections, title), encoding="utf-8")
    md_path.write_text(render_markdown(sections, title), encoding="utf-8")
    return html_path, md_path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m experiments.report", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--results", type=Path, default=Path("results"), help="results directory")
    ap.add_argument("--title", default="Sim2Real for cellular networks: results")
    args = ap.parse_args(argv)
    html_path, md_path = build_report(args.results, args.title)
    print(f"wrote {html_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
