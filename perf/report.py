#!/usr/bin/env python3
"""Benchmark results (one JSON file written by perf/run) to Markdown and SVG.

    python3 perf/report.py render RESULTS.json OUTDIR
        writes OUTDIR/results.md and the SVG plots beside it, prints the
        Markdown to stdout.
    python3 perf/report.py compare A.json B.json
        Markdown table of every run present in both files (A = before,
        B = after); exit 1 if any measurement regressed beyond the noise,
        0 otherwise.

Exit 2 with a one-line message on unreadable or invalid input.

Standard library only (Python 3.11). The schema (version 1) is described in
SCHEMA below and checked by `validate`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from typing import Any

SCHEMA = """\
{"schema": 1,
 "meta": {"date", "commit", "cpu", "cpus", "kernel", "shared_with",
          "duration_s", "notes": [str]},                      (all optional)
 "noise": {"rel": number >= 0, "how": str},                   (optional)
 "runs": [{"suite": str, "path": str, "conns": int, "rate": number,
           "rate_unit": str, "errors": int,                   (required)
           "size_bytes": int, "servers": int, "mbit_s": number,
           "latency_ms": {"50": number, ..., "99.9": number},
           "cpu_s", "cpu_per_1k_s", "proc_cpu_s": number,
           "cpu_what": str, "note": str}],                    (optional, may be null)
 "tables": [{"id": str, "title": str, "columns": [str],
             "rows": [[cell, ...]], "note": str}]}             (optional)
"""

# Suites in the order the report shows them; others follow alphabetically.
SUITE_ORDER = ["l7-new", "l7-keepalive", "l7-large", "l4-new", "l4-large", "scaling"]
KEY_FIELDS = ("suite", "path", "conns", "size_bytes", "servers")
NOISE_FLOOR = 0.05


class ReportError(Exception):
    """Bad input: reported as one line on stderr, exit code 2."""


# --------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def load(path: str) -> dict:
    """Read and validate one results file; ReportError names the file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ReportError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ReportError(f"{path}: not UTF-8 text: {e}") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:
        raise ReportError(f"{path}: invalid JSON: {e}") from None
    try:
        validate(data)
    except ReportError as e:
        raise ReportError(f"{path}: {e}") from None
    return data


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def validate(data: Any) -> None:
    """Check the schema; raise ReportError saying where and what is wrong."""
    if not isinstance(data, dict):
        raise ReportError("top level must be an object")
    if data.get("schema") != 1:
        raise ReportError(f"'schema' must be 1 (got {data.get('schema')!r})")
    meta = data.get("meta")
    if meta is not None:
        if not isinstance(meta, dict):
            raise ReportError("'meta' must be an object")
        notes = meta.get("notes")
        if notes is not None and not (isinstance(notes, list) and all(isinstance(n, str) for n in notes)):
            raise ReportError("meta.notes must be a list of strings")
    noise = data.get("noise")
    if noise is not None:
        if not isinstance(noise, dict):
            raise ReportError("'noise' must be an object")
        rel = noise.get("rel")
        if rel is not None and not (_is_num(rel) and rel >= 0):
            raise ReportError(f"noise.rel must be a number >= 0 (got {rel!r})")
    runs = data.get("runs")
    if not isinstance(runs, list):
        raise ReportError("'runs' must be a list")
    seen: dict[tuple, int] = {}
    for i, run in enumerate(runs):
        _validate_run(i, run)
        k = run_key(run)
        if k in seen:
            raise ReportError(f"runs[{i}]: same key {fmt_key(k)} as runs[{seen[k]}] (suite, path, conns, size_bytes, servers must be unique)")
        seen[k] = i
    tables = data.get("tables")
    if tables is not None:
        if not isinstance(tables, list):
            raise ReportError("'tables' must be a list")
        for i, t in enumerate(tables):
            _validate_table(i, t)


def _validate_run(i: int, run: Any) -> None:
    where = f"runs[{i}]"
    if not isinstance(run, dict):
        raise ReportError(f"{where}: must be an object")
    for field in ("suite", "path", "conns", "rate", "rate_unit", "errors"):
        if run.get(field) is None:
            raise ReportError(f"{where}: missing required field '{field}'")
    for field in ("suite", "path", "rate_unit"):
        if not isinstance(run[field], str) or not run[field]:
            raise ReportError(f"{where}: field '{field}' must be a non-empty string (got {run[field]!r})")
    for field in ("conns", "errors"):
        if not (_is_int(run[field]) and run[field] >= 0):
            raise ReportError(f"{where}: field '{field}' must be an integer >= 0 (got {run[field]!r})")
    if not (_is_num(run["rate"]) and run["rate"] >= 0):
        raise ReportError(f"{where}: field 'rate' must be a number >= 0 (got {run['rate']!r})")
    for field in ("size_bytes", "servers"):
        v = run.get(field)
        if v is not None and not (_is_int(v) and v >= 0):
            raise ReportError(f"{where}: field '{field}' must be an integer >= 0 or null (got {v!r})")
    for field in ("mbit_s", "cpu_s", "cpu_per_1k_s", "proc_cpu_s"):
        v = run.get(field)
        if v is not None and not (_is_num(v) and v >= 0):
            raise ReportError(f"{where}: field '{field}' must be a number >= 0 or null (got {v!r})")
    for field in ("cpu_what", "note"):
        v = run.get(field)
        if v is not None and not isinstance(v, str):
            raise ReportError(f"{where}: field '{field}' must be a string or null (got {v!r})")
    lat = run.get("latency_ms")
    if lat is not None:
        if not isinstance(lat, dict):
            raise ReportError(f"{where}: field 'latency_ms' must be an object or null")
        for p, v in lat.items():
            try:
                pf = float(p)
            except ValueError:
                pf = float("nan")
            if not (0 < pf <= 100):
                raise ReportError(f"{where}: latency_ms key {p!r} must be a percentile in (0, 100]")
            if v is not None and not (_is_num(v) and v >= 0):
                raise ReportError(f"{where}: latency_ms[{p!r}] must be a number >= 0 or null (got {v!r})")


def _validate_table(i: int, t: Any) -> None:
    where = f"tables[{i}]"
    if not isinstance(t, dict):
        raise ReportError(f"{where}: must be an object")
    cols = t.get("columns")
    if not (isinstance(cols, list) and cols and all(isinstance(c, str) for c in cols)):
        raise ReportError(f"{where}: 'columns' must be a non-empty list of strings")
    rows = t.get("rows")
    if not isinstance(rows, list):
        raise ReportError(f"{where}: 'rows' must be a list")
    for j, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(cols):
            raise ReportError(f"{where}: rows[{j}] must be a list of {len(cols)} cells (one per column)")
    for field in ("id", "title", "note"):
        v = t.get(field)
        if v is not None and not isinstance(v, str):
            raise ReportError(f"{where}: '{field}' must be a string or null")


def run_key(run: dict) -> tuple:
    return tuple(run.get(f) for f in KEY_FIELDS)


def fmt_key(k: tuple) -> str:
    suite, path, conns, size, servers = k
    parts = [f"{suite}", f"{path}", fmt_x("conns", conns)]
    if size is not None:
        parts.append(fmt_size(size))
    if servers is not None:
        parts.append(f"{servers} servers")
    return " / ".join(parts)


# --------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------


def fmt_num(v: float | None) -> str:
    """Compact: thousands separators at >= 100, three significant digits below."""
    if v is None:
        return "—"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if v == 0:
        return "0"
    return f"{v:.3g}"


def fmt_ratio(v: float) -> str:
    return f"{v:.2f}×"


def fmt_size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def fmt_si(v: float) -> str:
    a = abs(v)
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if a >= scale:
            return f"{v / scale:.3g}{suffix}"
    if a >= 1 or a == 0:
        return f"{v:.3g}"
    return f"{v:.2g}"


def md_cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, (dict, list)):
        s = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    elif isinstance(v, float):
        s = f"{v:g}" if abs(v) < 1e6 else f"{v:,.0f}"
    else:
        s = str(v)
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        out.append("| " + " | ".join(r) + " |")
    return out


def is_shoal(path: str) -> bool:
    return path.startswith("shoal-")


def p99(run: dict) -> float | None:
    lat = run.get("latency_ms") or {}
    return lat.get("99")


# --------------------------------------------------------------------------
# Grouping runs of a suite into a grid: rows (path + varying dims) x columns
# --------------------------------------------------------------------------


def x_field(suite: str) -> str:
    if suite == "scaling":
        return "servers"
    if suite.endswith("-large"):
        return "size_bytes"
    return "conns"


def fmt_x(field: str, v: Any) -> str:
    if v is None:
        return "—"
    if field == "size_bytes":
        return fmt_size(v)
    if field == "servers":
        return f"{v} server" + ("" if v == 1 else "s")
    return f"{v} conn" + ("" if v == 1 else "s")


class Grid:
    """The runs of one suite: x values, row labels, cell lookup."""

    def __init__(self, suite: str, runs: list[dict]):
        self.suite = suite
        self.runs = runs
        self.xf = x_field(suite)
        others = [f for f in ("conns", "size_bytes", "servers") if f != self.xf]
        # Dimensions besides x that vary in this suite become part of the row label.
        self.extra = [f for f in others if len({r.get(f) for r in runs}) > 1]
        self.xs = sorted({r.get(self.xf) for r in runs}, key=lambda v: (v is None, v or 0))
        self.rows: list[tuple] = []
        self.cells: dict[tuple, dict] = {}
        for r in runs:
            rk = self.row_key(r)
            if rk not in self.rows:
                self.rows.append(rk)
            self.cells[(rk, r.get(self.xf))] = r
        self.rows.sort(key=lambda rk: (not is_shoal(rk[0]), rk[0], [(v is None, v or 0) for v in rk[1:]]))

    def row_key(self, r: dict) -> tuple:
        return (r["path"],) + tuple(r.get(f) for f in self.extra)

    def label(self, rk: tuple) -> str:
        parts = [fmt_x(f, v) for f, v in zip(self.extra, rk[1:]) if v is not None]
        return rk[0] + (f" ({', '.join(parts)})" if parts else "")

    def get(self, rk: tuple, x: Any) -> dict | None:
        return self.cells.get((rk, x))

    def group_of(self, rk: tuple) -> tuple:
        """The row key without the path: Shoal and proxies compare within a group."""
        return rk[1:]


def suites_of(runs: list[dict]) -> list[str]:
    names = {r["suite"] for r in runs}
    return [s for s in SUITE_ORDER if s in names] + sorted(names - set(SUITE_ORDER))


# --------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------


def render_markdown(data: dict, svgs: list[tuple[str, str]]) -> str:
    meta = data.get("meta") or {}
    noise = data.get("noise") or {}
    runs = data["runs"]

    def m(k: str) -> str:
        v = meta.get(k)
        return "?" if v is None or v == "" else str(v)

    out = ["# Shoal benchmark results", ""]
    out.append(f"- date: {m('date')}; commit: `{m('commit')}`")
    out.append(f"- CPU: {m('cpu')}, {m('cpus')} cpus; kernel {m('kernel')}")
    out.append(f"- shared with: {m('shared_with')}")
    out.append(f"- duration per run: {m('duration_s')} s")
    if noise.get("rel") is not None:
        how = f" ({noise['how']})" if noise.get("how") else ""
        out.append(f"- run-to-run noise: ±{noise['rel'] * 100:.1f} %{how}")
    else:
        out.append("- run-to-run noise: not measured")
    for n in meta.get("notes") or []:
        out.append(f"- {n}")
    total_err = sum(r["errors"] for r in runs)
    if total_err:
        bad = sum(1 for r in runs if r["errors"] > 0)
        out.append(f"- ⚠ **{bad} of {len(runs)} runs had errors ({total_err} in total)**: see the suites")
    out.append("")

    if not runs:
        out += ["No runs.", ""]
    for suite in suites_of(runs):
        out += _suite_markdown(Grid(suite, [r for r in runs if r["suite"] == suite]))

    for t in data.get("tables") or []:
        title = t.get("title") or t.get("id") or "table"
        out.append(f"## {title}")
        out.append("")
        out += md_table(t["columns"], [[md_cell(c) for c in row] for row in t["rows"]])
        if t.get("note"):
            out += ["", t["note"]]
        out.append("")

    if svgs:
        out.append("## Plots")
        out.append("")
        for name, title in svgs:
            out.append(f"- [{title}]({name})")
        out.append("")
    return "\n".join(out)


def _suite_markdown(g: Grid) -> list[str]:
    out = [f"## {g.suite}", ""]
    units = sorted({r["rate_unit"] for r in g.runs})
    has_p99 = any(p99(r) is not None for r in g.runs)
    fixed = [fmt_x(f, v) for f in ("conns", "size_bytes", "servers") if f != g.xf and f not in g.extra
             for v in {r.get(f) for r in g.runs} if v is not None]
    erred = [r for r in g.runs if r["errors"] > 0]
    out.append(f"{' / '.join(units)}" + (" (p99 ms)" if has_p99 else "")
               + (f", all at {', '.join(fixed)}" if fixed else "")
               + ("; ⚠ = the run had errors" if erred else ""))
    out.append("")
    header = ["path"] + [fmt_x(g.xf, x) for x in g.xs]
    rows = []
    for rk in g.rows:
        row = [md_cell(g.label(rk))]
        for x in g.xs:
            r = g.get(rk, x)
            if r is None:
                row.append("—")
                continue
            cell = fmt_num(r["rate"])
            if p99(r) is not None:
                cell += f" ({fmt_num(p99(r))})"
            if r["errors"] > 0:
                cell += " ⚠"
            row.append(cell)
        rows.append(row)
    out += md_table(header, rows)
    out.append("")
    if erred:
        items = "; ".join(f"{r['path']} at {fmt_x(g.xf, r.get(g.xf))}: {r['errors']}" for r in erred)
        out.append(f"⚠ **errors in {len(erred)} of {len(g.runs)} runs** ({sum(r['errors'] for r in erred)} in total): {items}")
    else:
        out.append(f"Errors: none in {len(g.runs)} run" + ("." if len(g.runs) == 1 else "s."))
    out.append("")

    if g.suite.endswith("-large") and any(r.get("mbit_s") is not None for r in g.runs):
        out.append("Throughput, Mbit/s")
        out.append("")
        out += md_table(header, [[md_cell(g.label(rk))] + [
            fmt_num((g.get(rk, x) or {}).get("mbit_s")) for x in g.xs] for rk in g.rows])
        out.append("")

    if any(r.get("cpu_per_1k_s") is not None for r in g.runs):
        out.append("CPU seconds per 1000 connections (lower is better)")
        out.append("")
        out += md_table(header, [[md_cell(g.label(rk))] + [
            fmt_num((g.get(rk, x) or {}).get("cpu_per_1k_s")) for x in g.xs] for rk in g.rows])
        out.append("")
        what: dict[str, str] = {}
        for r in g.runs:
            if r.get("cpu_what"):
                what.setdefault(r["path"], r["cpu_what"])
        if what:
            out.append("CPU measured as: " + "; ".join(f"{p}: {w}" for p, w in what.items()))
            out.append("")

    if erred:
        out.append("Errors")
        out.append("")
        out += md_table(header, [[md_cell(g.label(rk))] + [
            str(g.get(rk, x)["errors"]) if g.get(rk, x) else "—" for x in g.xs] for rk in g.rows])
        out.append("")

    if g.suite.startswith("l7-"):
        lines = _ratio_lines(g)
        if lines:
            out.append("Shoal ÷ best proxy (rate: above 1 is better; CPU per 1000 connections: below 1 is better)")
            out.append("")
            out += lines
            out.append("")

    notes = [f"{g.label(g.row_key(r))} at {fmt_x(g.xf, r.get(g.xf))}: {r['note']}" for r in g.runs if r.get("note")]
    if notes:
        out.append("Notes:")
        out.append("")
        out += [f"- {n}" for n in notes]
        out.append("")
    return out


def _ratio_lines(g: Grid) -> list[str]:
    lines = []
    groups = []
    for rk in g.rows:
        if g.group_of(rk) not in groups:
            groups.append(g.group_of(rk))
    for grp in groups:
        rks = [rk for rk in g.rows if g.group_of(rk) == grp]
        for x in g.xs:
            runs = [g.get(rk, x) for rk in rks if g.get(rk, x) is not None]
            shoal = [r for r in runs if is_shoal(r["path"])]
            proxies = [r for r in runs if not is_shoal(r["path"])]
            if not shoal or not proxies:
                continue
            best = max(proxies, key=lambda r: r["rate"])
            parts = []
            if best["rate"] > 0:
                parts.append("rate " + ", ".join(
                    f"{s['path']} ÷ {best['path']} = {fmt_ratio(s['rate'] / best['rate'])}" for s in shoal))
            cpu_proxies = [r for r in proxies if r.get("cpu_per_1k_s")]
            cpu_shoal = [s for s in shoal if s.get("cpu_per_1k_s") is not None]
            if cpu_proxies and cpu_shoal:
                bc = min(cpu_proxies, key=lambda r: r["cpu_per_1k_s"])
                parts.append("CPU/1k conns " + ", ".join(
                    f"{s['path']} ÷ {bc['path']} = {fmt_ratio(s['cpu_per_1k_s'] / bc['cpu_per_1k_s'])}"
                    for s in cpu_shoal))
            if parts:
                label = fmt_x(g.xf, x)
                if grp:
                    label += " (" + ", ".join(fmt_x(f, v) for f, v in zip(g.extra, grp)) + ")"
                warn = " ⚠ errors in a compared run" if any(r["errors"] for r in runs) else ""
                lines.append(f"- {label}: " + "; ".join(parts) + warn)
    return lines


# --------------------------------------------------------------------------
# SVG
# --------------------------------------------------------------------------

W, H = 640, 400
LEFT, RIGHT, TOP, BOTTOM = 72, 468, 42, 336
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
MARKERS = ["circle", "square", "triangle", "diamond"]


def xml_escape(s: str) -> str:
    return (str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&apos;"))


class Axis:
    def __init__(self, lo: float, hi: float, log: bool, px0: float, px1: float):
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        self.lo, self.hi, self.log, self.px0, self.px1 = lo, hi, log, px0, px1

    def __call__(self, v: float) -> float:
        t = math.log10(v) if self.log else v
        return self.px0 + (t - self.lo) / (self.hi - self.lo) * (self.px1 - self.px0)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks


def log_ticks(lo: float, hi: float) -> list[float]:
    """Decades, with 2 and 5 between them when the range is under 3 decades."""
    mults = (1, 2, 5) if math.log10(hi / lo) < 3 else (1,)
    ticks = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in mults:
            v = m * 10 ** e
            if lo <= v <= hi:
                ticks.append(v)
    return ticks


def _marker(kind: str, x: float, y: float, color: str) -> str:
    if kind == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>'
    if kind == "square":
        return f'<rect x="{x - 3.2:.1f}" y="{y - 3.2:.1f}" width="6.4" height="6.4" fill="{color}"/>'
    if kind == "triangle":
        return f'<polygon points="{x:.1f},{y - 4.2:.1f} {x - 4:.1f},{y + 3:.1f} {x + 4:.1f},{y + 3:.1f}" fill="{color}"/>'
    return f'<polygon points="{x:.1f},{y - 4.5:.1f} {x + 4:.1f},{y:.1f} {x:.1f},{y + 4.5:.1f} {x - 4:.1f},{y:.1f}" fill="{color}"/>'


def line_plot(title: str, xlabel: str, ylabel: str, series: list[tuple[str, list[tuple[float, float]]]],
              *, xlog: bool = False, xticks: list[tuple[float, str]] | None = None,
              yticks: list[tuple[float, str]] | None = None, ylog: bool = False,
              ylim: tuple[float, float] | None = None, xlim: tuple[float, float] | None = None,
              ideal: list[tuple[str, list[tuple[float, float]], int]] | None = None) -> str:
    """One SVG document: a polyline with markers per series, axes, ticks, legend, title.

    `ideal` lines are dashed paths (not polylines) in the colour of the series index given."""
    ideal_color = ["#555" if len(series) == 1 else COLORS[i % len(COLORS)] for _, _, i in ideal or []]
    ideal = [(n, p) for n, p, _ in ideal or []]
    pts = [p for _, s in series + ideal for p in s]
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    if xlim is None:
        lo, hi = min(xs), max(xs)
        if xlog:
            xlim = (lo / 1.25, hi * 1.25)
        else:
            pad = (hi - lo) * 0.05 or 0.5
            xlim = (lo - pad, hi + pad)
    if ylim is None:
        top = max(ys) if ys else 1
        ylim = (0, (top * 1.08) or 1)
    # The legend takes the right margin: wide enough for the longest name (about 6.3 px a character).
    longest = max((len(_legend_name(n)) for n, _ in series + ideal), default=0)
    right = max(360, min(RIGHT, W - 8 - 28 - int(longest * 6.3) - 12))
    ax = Axis(xlim[0], xlim[1], xlog, LEFT, right)
    ay = Axis(ylim[0], ylim[1], ylog, BOTTOM, TOP)
    if xticks is None:
        xticks = [(v, fmt_si(v)) for v in (log_ticks(*xlim) if xlog else nice_ticks(*xlim))]
    if yticks is None:
        yticks = [(v, fmt_si(v)) for v in (log_ticks(*ylim) if ylog else nice_ticks(*ylim))]

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         f'font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
         f'<title>{xml_escape(title)}</title>',
         f'<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">{xml_escape(title)}</text>']
    # grid and ticks
    for v, lab in xticks:
        x = ax(v)
        if LEFT - 0.5 <= x <= right + 0.5:
            o.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{BOTTOM}" stroke="#e4e4e4"/>')
            o.append(f'<line x1="{x:.1f}" y1="{BOTTOM}" x2="{x:.1f}" y2="{BOTTOM + 5}" stroke="black"/>')
            o.append(f'<text x="{x:.1f}" y="{BOTTOM + 18}" text-anchor="middle">{xml_escape(lab)}</text>')
    for v, lab in yticks:
        y = ay(v)
        if TOP - 0.5 <= y <= BOTTOM + 0.5:
            o.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e4e4e4"/>')
            o.append(f'<line x1="{LEFT - 5}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="black"/>')
            o.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{xml_escape(lab)}</text>')
    o.append(f'<rect x="{LEFT}" y="{TOP}" width="{right - LEFT}" height="{BOTTOM - TOP}" fill="none" stroke="black"/>')
    o.append(f'<text x="{(LEFT + right) / 2}" y="{H - 22}" text-anchor="middle" font-size="12">{xml_escape(xlabel)}</text>')
    o.append(f'<text x="18" y="{(TOP + BOTTOM) / 2}" text-anchor="middle" font-size="12" '
             f'transform="rotate(-90 18 {(TOP + BOTTOM) / 2})">{xml_escape(ylabel)}</text>')
    # ideal lines (dashed paths, not polylines: one polyline per measured series)
    for i, (name, pts_) in enumerate(ideal):
        d = " ".join(("M" if j == 0 else "L") + f"{ax(x):.1f},{ay(y):.1f}" for j, (x, y) in enumerate(pts_))
        o.append(f'<path class="ideal" d="{d}" fill="none" stroke="{ideal_color[i]}" stroke-width="1.5" stroke-dasharray="6 4"/>')
    # series
    for i, (name, pts_) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        mk = MARKERS[(i // len(COLORS) + i) % len(MARKERS)]
        p = " ".join(f"{ax(x):.1f},{ay(y):.1f}" for x, y in pts_)
        o.append(f'<g><title>{xml_escape(name)}</title>')
        o.append(f'<polyline class="series" points="{p}" fill="none" stroke="{c}" stroke-width="2"/>')
        o += [_marker(mk, ax(x), ay(y), c) for x, y in pts_]
        o.append('</g>')
    # legend
    lx, ly = right + 12, TOP + 8
    for i, (name, _) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        mk = MARKERS[(i // len(COLORS) + i) % len(MARKERS)]
        y = ly + i * 18
        o.append(f'<line x1="{lx}" y1="{y}" x2="{lx + 22}" y2="{y}" stroke="{c}" stroke-width="2"/>')
        o.append(_marker(mk, lx + 11, y, c))
        o.append(f'<text x="{lx + 28}" y="{y + 4}" class="legend">{xml_escape(_legend_name(name))}</text>')
    for j, (name, _) in enumerate(ideal):
        y = ly + (len(series) + j) * 18
        o.append(f'<line x1="{lx}" y1="{y}" x2="{lx + 22}" y2="{y}" stroke="{ideal_color[j]}" stroke-width="1.5" stroke-dasharray="6 4"/>')
        o.append(f'<text x="{lx + 28}" y="{y + 4}" class="legend">{xml_escape(_legend_name(name))}</text>')
    o.append('</svg>')
    return "\n".join(o) + "\n"


def _legend_name(name: str, limit: int = 34) -> str:
    """Long names are cut in the legend (the series' <title> keeps the whole name)."""
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _x_axis_label(g: Grid) -> str:
    return {"conns": "concurrent connections (log scale)", "size_bytes": "response size (log scale)",
            "servers": "servers"}[g.xf]


def _x_tick_label(field: str, v: Any) -> str:
    return fmt_size(v) if field == "size_bytes" else str(v)


def rate_plot(g: Grid) -> str | None:
    xs = [x for x in g.xs if x is not None and (g.xf == "servers" or x > 0)]
    if len(xs) < 2:
        return None
    series = []
    for rk in g.rows:
        pts = [(x, g.get(rk, x)["rate"]) for x in xs if g.get(rk, x) is not None]
        if pts:
            series.append((g.label(rk), pts))
    if not series:
        return None
    units = " / ".join(sorted({r["rate_unit"] for r in g.runs}))
    ideal = []
    if g.suite == "scaling":
        for i, (name, pts) in enumerate(series):
            base = dict(pts).get(1)
            if base:
                ideal.append((f"ideal: N × {name}(1)" if len(series) > 1 else "ideal: N × rate(1)",
                              [(x, base * x) for x in xs], i))
    xlog = g.xf != "servers"
    ticks = [(x, _x_tick_label(g.xf, x)) for x in xs] if len(xs) <= 10 else None
    title = f"{g.suite}: rate vs {'servers' if g.xf == 'servers' else 'size' if g.xf == 'size_bytes' else 'connections'}"
    return line_plot(title, _x_axis_label(g), units, series, xlog=xlog, xticks=ticks, ideal=ideal)


def _tail(p: float) -> float:
    return -math.log10(1 - p / 100)


def latency_plot(g: Grid) -> tuple[str, Any] | None:
    with_lat = [r for r in g.runs if r.get("latency_ms") and any(
        v is not None and v > 0 and float(p) < 100 for p, v in r["latency_ms"].items())]
    if not with_lat:
        return None
    top = max(r["conns"] for r in with_lat)
    series = []
    for r in sorted((r for r in with_lat if r["conns"] == top), key=lambda r: g.rows.index(g.row_key(r))):
        pts = sorted((v, float(p)) for p, v in r["latency_ms"].items()
                     if v is not None and v > 0 and float(p) < 100)
        pts = sorted(pts, key=lambda t: t[1])
        name = g.label(g.row_key(r))
        if g.xf != "conns":
            name += f" at {fmt_x(g.xf, r.get(g.xf))}"
        series.append((name, [(v, _tail(p)) for v, p in pts]))
    lats = [v for _, s in series for v, _ in s]
    qs = [q for _, s in series for _, q in s]
    xlim = (min(lats) / 1.3, max(lats) * 1.3)
    ylim = (max(0.0, min(qs) - 0.2), max(qs) + 0.2)
    yt = [(_tail(p), f"{p:g}") for p in (50, 75, 90, 95, 99, 99.9, 99.99, 99.999)
          if ylim[0] <= _tail(p) <= ylim[1]]
    svg = line_plot(f"{g.suite}: latency at {top} connections", "latency, ms (log scale)",
                    "percentile (axis scaled by 1/(1 − p))", series, xlog=True, xlim=xlim, ylim=ylim, yticks=yt)
    return svg, top


def render(data: dict, outdir: str) -> str:
    """Write results.md and the SVGs into outdir; return the Markdown."""
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as e:
        raise ReportError(f"{outdir}: cannot create directory: {e.strerror or e}") from None
    files: list[tuple[str, str, str]] = []  # name, title, content
    runs = data["runs"]
    for suite in suites_of(runs):
        g = Grid(suite, [r for r in runs if r["suite"] == suite])
        svg = rate_plot(g)
        if svg:
            title = f"{suite}: rate vs {x_field(suite).replace('size_bytes', 'size')}"
            if suite == "scaling":
                title += " with the ideal N × rate at 1 server"
            files.append((f"rate-{_safe(suite)}.svg", title, svg))
    for suite in ("l7-new", "l7-keepalive"):
        rs = [r for r in runs if r["suite"] == suite]
        if rs:
            lp = latency_plot(Grid(suite, rs))
            if lp:
                files.append((f"latency-{_safe(suite)}.svg", f"{suite}: latency percentiles at {lp[1]} connections", lp[0]))
    md = render_markdown(data, [(n, t) for n, t, _ in files])
    try:
        for name, _, content in files:
            with open(os.path.join(outdir, name), "w", encoding="utf-8") as f:
                f.write(content)
        with open(os.path.join(outdir, "results.md"), "w", encoding="utf-8") as f:
            f.write(md + "\n")
    except OSError as e:
        raise ReportError(f"{outdir}: cannot write: {e.strerror or e}") from None
    return md


# --------------------------------------------------------------------------
# Compare
# --------------------------------------------------------------------------

# (label, getter, higher_is_better)
METRICS = [
    ("rate", lambda r: r.get("rate"), True),
    ("p99 ms", p99, False),
    ("CPU s/1k conns", lambda r: r.get("cpu_per_1k_s"), False),
]


def _verdict(a: float, b: float, higher_better: bool, thr: float) -> tuple[str, float | None]:
    if a == 0:
        if b == 0:
            return "same", 0.0
        return ("improvement" if higher_better else "regression"), None
    change = (b - a) / a
    good = change if higher_better else -change
    if good < -thr:
        return "regression", change
    if good > thr:
        return "improvement", change
    return "same", change


def compare(a: dict, b: dict, a_name: str = "A", b_name: str = "B") -> tuple[str, int]:
    """Markdown comparison and the number of regressions."""
    noise_a = (a.get("noise") or {}).get("rel") or 0.0
    noise_b = (b.get("noise") or {}).get("rel") or 0.0
    thr = max(noise_a, noise_b, NOISE_FLOOR)
    ra = {run_key(r): r for r in a["runs"]}
    rb = {run_key(r): r for r in b["runs"]}
    both = [k for k in ra if k in rb]
    order = {s: i for i, s in enumerate(SUITE_ORDER)}
    skey = lambda k: (order.get(k[0], len(order)), k[0], k[1], [(v is None, v or 0) for v in k[2:]])
    both.sort(key=skey)
    rows = []
    n_reg = n_imp = n_meas = 0
    for k in both:
        x, y = ra[k], rb[k]
        if x["rate_unit"] != y["rate_unit"]:
            raise ReportError(f"{b_name}: run {fmt_key(k)} has rate_unit {y['rate_unit']!r}, "
                              f"{a_name} has {x['rate_unit']!r}: not comparable")
        for label, get, hb in METRICS:
            va, vb = get(x), get(y)
            if va is None or vb is None:
                continue
            verdict, change = _verdict(va, vb, hb, thr)
            n_meas += 1
            n_reg += verdict == "regression"
            n_imp += verdict == "improvement"
            mlabel = f"{label} ({x['rate_unit']})" if label == "rate" else label
            ch = "n/a" if change is None else f"{change * 100:+.1f} %"
            rows.append([md_cell(fmt_key(k)), mlabel, fmt_num(va), fmt_num(vb), ch,
                         f"**{verdict}**" if verdict == "regression" else verdict])
        if x["errors"] or y["errors"]:
            # Errors are compared without a threshold: any increase is a regression.
            verdict = "regression" if y["errors"] > x["errors"] else "improvement" if y["errors"] < x["errors"] else "same"
            n_meas += 1
            n_reg += verdict == "regression"
            n_imp += verdict == "improvement"
            ch = "n/a" if x["errors"] == 0 else f"{(y['errors'] - x['errors']) / x['errors'] * 100:+.1f} %"
            rows.append([md_cell(fmt_key(k)), "errors ⚠", str(x["errors"]), str(y["errors"]), ch,
                         f"**{verdict}**" if verdict == "regression" else verdict])
    out = [f"# Comparison: A = {a_name}, B = {b_name}", ""]
    for name, d in (("A", a), ("B", b)):
        meta = d.get("meta") or {}
        out.append(f"- {name}: commit `{meta.get('commit', '?')}`, {meta.get('date', '?')}, "
                   f"noise ±{((d.get('noise') or {}).get('rel') or 0) * 100:.1f} %")
    out.append("")
    out.append(f"**{len(both)} runs compared ({n_meas} measurements): {n_reg} regressions, {n_imp} improvements; "
               f"threshold ±{thr * 100:.1f} % (max of noise A {noise_a * 100:.1f} %, noise B {noise_b * 100:.1f} %, "
               f"floor {NOISE_FLOOR * 100:.0f} %)**")
    out.append("")
    out.append("Rate: higher is better; p99 and CPU: lower is better; errors: any increase is a regression.")
    out.append("")
    if rows:
        out += md_table(["run", "metric", "A", "B", "change", "verdict"], rows)
        out.append("")
    removed = sorted((k for k in ra if k not in rb), key=skey)
    added = sorted((k for k in rb if k not in ra), key=skey)
    if removed:
        out.append(f"Removed (only in A, {len(removed)}):")
        out.append("")
        out += [f"- {fmt_key(k)}" for k in removed]
        out.append("")
    if added:
        out.append(f"Added (only in B, {len(added)}):")
        out.append("")
        out += [f"- {fmt_key(k)}" for k in added]
        out.append("")
    return "\n".join(out), n_reg


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with usage, as argparse does, without a traceback
        self.print_usage(sys.stderr)
        print(f"report.py: error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(encoding="utf-8")  # type: ignore[attr-defined]
        except (AttributeError, ValueError):
            pass
    p = _Parser(prog="report.py", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter, epilog="Schema:\n" + SCHEMA)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="results JSON to OUTDIR/results.md and SVG plots")
    r.add_argument("results")
    r.add_argument("outdir")
    c = sub.add_parser("compare", help="A/B comparison; exit 1 on any regression")
    c.add_argument("a")
    c.add_argument("b")
    args = p.parse_args(argv)
    try:
        if args.cmd == "render":
            print(render(load(args.results), args.outdir))
            return 0
        a, b = load(args.a), load(args.b)
        md, n_reg = compare(a, b, args.a, args.b)
        print(md)
        return 1 if n_reg else 0
    except ReportError as e:
        print(f"report.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
