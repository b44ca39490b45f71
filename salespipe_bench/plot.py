"""One PNG, one panel per measurement (Pillow: no plotting library needed)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

PANEL_W, PANEL_H = 620, 440
COLOURS = ["#4f43dd", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]
Group = tuple[str, list[tuple[str, float]]]  # bar label, stacked (segment, value)


def _number(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _font(size: int):
    return ImageFont.load_default(size=size)


def _panel(img: Image.Image, x0: int, y0: int, title: str, met: bool | None, groups: list[Group], unit: str,
           target: tuple[float, str] | None = None, subtitle: str = "") -> None:
    d = ImageDraw.Draw(img)
    d.rectangle([x0 + 4, y0 + 4, x0 + PANEL_W - 4, y0 + PANEL_H - 4], outline="#cccccc")
    status = {True: ("target met", "#2e7d32"), False: ("target NOT met", "#c62828"), None: ("", "#000")}[met]
    d.text((x0 + 16, y0 + 12), title, fill="#000", font=_font(17))
    d.text((x0 + PANEL_W - 16, y0 + 14), status[0], fill=status[1], font=_font(14), anchor="ra")
    if subtitle:
        d.text((x0 + 16, y0 + 36), subtitle[:95], fill="#555", font=_font(11))
    if not groups:
        d.text((x0 + 16, y0 + 70), "not measured", fill="#c62828", font=_font(13))
        return
    segments: list[str] = []
    for _, parts in groups:
        for name, _ in parts:
            if name not in segments:
                segments.append(name)
    colour = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(segments)}
    # legend
    lx, ly = x0 + 16, y0 + 54
    for name in segments:
        w = d.textlength(name, font=_font(11)) + 26
        if lx + w > x0 + PANEL_W - 10:
            lx, ly = x0 + 16, ly + 16
        d.rectangle([lx, ly + 2, lx + 10, ly + 12], fill=colour[name])
        d.text((lx + 14, ly), name, fill="#333", font=_font(11))
        lx += w
    top, bottom, left, right = ly + 30, y0 + PANEL_H - 46, x0 + 64, x0 + PANEL_W - 20
    peak = max([sum(v for _, v in parts) for _, parts in groups] + [target[0] if target else 0]) or 1
    peak *= 1.12
    d.line([left, top, left, bottom], fill="#888")
    d.line([left, bottom, right, bottom], fill="#888")
    for i in range(5):
        v = peak * i / 4
        y = bottom - (bottom - top) * i / 4
        d.line([left - 4, y, left, y], fill="#888")
        d.text((left - 6, y), _number(v), fill="#555", font=_font(10), anchor="rm")
    d.text((x0 + 12, top - 16), unit, fill="#555", font=_font(10))
    slot = (right - left) / len(groups)
    for i, (label, parts) in enumerate(groups):
        bx0, bx1 = left + i * slot + slot * 0.18, left + (i + 1) * slot - slot * 0.18
        y = bottom
        for name, value in parts:
            h = (bottom - top) * value / peak
            if h > 0:
                d.rectangle([bx0, y - h, bx1, y], fill=colour[name])
            y -= h
        total = sum(v for _, v in parts)
        d.text(((bx0 + bx1) / 2, y - 3), _number(total), fill="#000", font=_font(11), anchor="md")
        d.text(((bx0 + bx1) / 2, bottom + 6), label, fill="#000", font=_font(11), anchor="ma")
    if target:
        ty = bottom - (bottom - top) * target[0] / peak
        for x in range(int(left), int(right), 10):
            d.line([x, ty, min(x + 5, right), ty], fill="#c62828", width=2)
        d.text((right, ty - 3), target[1], fill="#c62828", font=_font(11), anchor="rd")


def _spark_vs_duckdb(m: dict):
    s = m["seconds"]
    other = max(s["spark_pipeline"] - s["spark_session_start"] - s["spark_steps"], 0)
    groups = [("DuckDB", [("DuckDB reference", s["duckdb"])])]
    if "spark_floor" in s:  # results before the floor was measured have none
        groups.append(("plain Spark", [("JVM start", s["spark_floor"] - s["spark_floor_read_write"]),
                                       ("CSV read + Parquet write", s["spark_floor_read_write"])]))
    groups += [("Spark pipeline", [("JVM start", s["spark_session_start"]), ("Spark steps", s["spark_steps"]),
                                  ("Dagster, catalog, warehouse", other)])]
    return groups, "seconds", (2 * s["duckdb"], "2 x DuckDB"), \
        f"one week at scale {m['scale']:g}: ratio {m['ratio']:.2f} (Spark steps alone {m['ratio_spark_steps']:.2f})" + (
            f", pipeline/plain Spark {m['ratio_floor']:.2f}" if "ratio_floor" in m else "")


def _history(m: dict):
    groups = [(f"{p['weeks']} wk", [("sensor tick", p["tick_seconds"]), ("daily run", p["daily_seconds"]),
                                    ("weekly run", p["weekly_seconds"])]) for p in m["points"]]
    low = min(p["total_seconds"] for p in m["points"])
    return groups, "seconds", (1.2 * low, "1.2 x fastest"), \
        f"one more day after N weeks of history, scale {m['scale']:g}: max/min {m['max_over_min']:.2f}"


def _latency(m: dict):
    groups = [(r["day"][5:], [(k, v) for k, v in r["phases"].items()]) for r in m["runs"]]
    return groups, "seconds", (m["target_seconds"], f"{m['target_seconds']:g} s"), \
        f"landed file -> warehouse rows, sensor interval {m['sensor_interval']} s, median {m['median_seconds']:.1f} s"


def _memory(m: dict):
    groups = []
    for p in m["points"]:
        groups.append((f"orch @{p['scale']:g}", [("orchestrator", p["orchestrator_peak_mb"])]))
        groups.append((f"Spark @{p['scale']:g}", [("Spark JVM + workers", p["spark_peak_mb"])]))
    return groups, "peak MB", None, \
        f"orchestrator {m['orchestrator_growth']:+.0%} while data x{m['data_growth']:g}"


def _catchup(m: dict):
    groups = [(f"{p['days']} d @{p['scale']:g}", [("salespipe run", p["wall_seconds"])]) for p in m["points"]]
    return groups, "seconds", None, "; ".join(f"{p['days']} days at {p['scale']:g}: {p['seconds_per_day']:.2f} s/day"
                                              for p in m["points"])


def _staging_warm(m: dict):
    label = {"scale1_sales_file": "sales file", "demo_day": "demo day"}
    groups = [(f"{label.get(name, name)}: {kind}", [(kind, p[key])]) for name, p in m["points"].items()
              for kind, key in (("plain Spark", "warm_floor_seconds"), ("staged", "warm_staged_seconds"))]
    file = m["points"]["scale1_sales_file"]
    return groups, "seconds", None, f"warm; one sales file staged / plain Spark {file['warm_ratio']:.2f}"


PANELS = {"spark_vs_duckdb": ("Raw -> weekly fact: Spark vs DuckDB", _spark_vs_duckdb),
          "history": ("Cost of one more day vs history", _history),
          "latency": ("Landed file -> warehouse latency", _latency),
          "memory": ("Peak memory: orchestrator vs Spark", _memory),
          "catchup": ("Catching up: landed at once -> warehouse", _catchup),
          "staging_warm": ("Staging, warm session, vs plain Spark", _staging_warm)}


def plot(results: dict, path: Path) -> Path:
    names = [n for n in PANELS if n in results.get("measurements", {})]
    cols = 2 if len(names) > 1 else 1
    rows = max(1, (len(names) + cols - 1) // cols)
    img = Image.new("RGB", (PANEL_W * cols, PANEL_H * rows + 30), "white")
    d = ImageDraw.Draw(img)
    machine = results.get("machine", {})
    d.text((10, 8), f"salespipe bench {results.get('generated_at', '')} - {machine.get('cpu_model', '?')}, "
                    f"{machine.get('cores')} cores, load {machine.get('load_average_at_start')}",
           fill="#333", font=_font(12))
    for i, name in enumerate(names):
        m = results["measurements"][name]
        title, build = PANELS[name]
        x0, y0 = (i % cols) * PANEL_W, 30 + (i // cols) * PANEL_H
        try:
            groups, unit, target, subtitle = build(m)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            groups, unit, target, subtitle = [], "", None, (m.get("error") or "no numbers")
        _panel(img, x0, y0, title, m.get("met"), groups, unit, target, subtitle)
    img.save(path, format="PNG")
    return path
