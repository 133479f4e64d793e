"""Line charts as standalone SVG files, with nothing but the Python standard library.

`line_chart(path, title, x_label, y_label, series)` draws one line per series over a
logarithmic x axis (the benchmark sweeps double or multiply by ten at each step), with a
tick and a label at every x value the data has, a linear (or, with `y_log=True`,
logarithmic) y axis with round tick values, axis labels, and a legend. A point whose y is
None (a failed measurement) breaks its line; on a logarithmic axis a y of zero or below (a
per-connection RSS that fell, say: noise at a small count) is drawn hollow at the axis floor
and listed in a footnote, never dropped silently. Series are dicts:

    {"name": "natsring", "points": [(x, y), ...], "dashed": False}

Colours follow the series' order; a dashed series (the loopback ceiling) is drawn grey.
Used by scripts/bench.py; `python3 scripts/svg_chart.py OUT.svg` writes a demo chart.
"""
import math
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 760, 460
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 86, 190, 48, 64
COLOURS = ["#d9480f", "#1864ab", "#4dabf7", "#2b8a3e", "#862e9c", "#e67700"]
CEILING_COLOUR = "#868e96"


def si(value, unit=""):
    """A short label: 1.5 k, 16 M, 2.1 G (decimal prefixes)."""
    if value is None:
        return "-"
    magnitude = abs(value)
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= factor:
            return f"{value / factor:.3g} {prefix}{unit}".strip()
    return f"{value:.3g} {unit}".strip()


def binary(value, unit="B"):
    """A short label in binary prefixes: 16 B, 1 KiB, 64 KiB, 1.5 MiB."""
    if value is None:
        return "-"
    for factor, prefix in ((1 << 30, "Gi"), (1 << 20, "Mi"), (1 << 10, "Ki")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _nice_step(span, ticks=5):
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 2.5, 5, 10):
        if raw <= multiple * power:
            return multiple * power
    return 10 * power


def _y_ticks(low, high, log, base=10):
    if log:
        first = math.floor(math.log(low, base) + 1e-9)
        last = math.ceil(math.log(high, base) - 1e-9)
        if first == last:
            last += 1
        stride = max(1, math.ceil((last - first) / 8))
        last = first + math.ceil((last - first) / stride) * stride
        ticks = [float(base) ** e for e in range(first, last + 1, stride)]
        if base == 10 and last - first <= 2:
            ticks = sorted(t * m for t in ticks for m in (1, 2, 5) if t * m <= base ** last)
        return ticks, float(base) ** first, float(base) ** last
    step = _nice_step(high - low if high > low else (high or 1))
    top = math.ceil(high / step) * step
    bottom = 0.0 if low >= 0 else math.floor(low / step) * step
    count = int(round((top - bottom) / step))
    return [bottom + i * step for i in range(count + 1)], bottom, top


def line_chart(path, title, x_label, y_label, series, *, y_log=False, y_log_base=10,
               x_format=str, y_format=si, subtitle=None):
    """Writes one SVG line chart to `path` (see the module docstring). A logarithmic y axis
    has ticks at powers of `y_log_base` (2 suits byte counts shown in KiB and MiB)."""
    xs = sorted({x for s in series for x, _ in s["points"]})
    ys = [y for s in series for _, y in s["points"] if y is not None and (y > 0 or not y_log)]
    if not xs or not ys:
        raise ValueError(f"{path}: nothing to plot")
    ticks, y_low, y_high = _y_ticks(min(ys), max(ys), y_log, y_log_base)
    x_low, x_high = math.log(xs[0]), math.log(xs[-1])
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def px(x):
        return MARGIN_LEFT + (math.log(x) - x_low) / (x_high - x_low) * plot_w

    def py(y):
        if y_log:
            fraction = (math.log(y) - math.log(y_low)) / (math.log(y_high) - math.log(y_low))
        else:
            fraction = (y - y_low) / (y_high - y_low)
        return MARGIN_TOP + plot_h - fraction * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="Helvetica, Arial, sans-serif" '
        f'font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2:.0f}" y="22" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{escape(title)}</text>',
    ]
    if subtitle:
        out.append(f'<text x="{WIDTH / 2:.0f}" y="38" text-anchor="middle" fill="#555">'
                   f'{escape(subtitle)}</text>')
    # Grid, ticks and tick labels.
    for y in ticks:
        yy = py(y)
        out.append(f'<line x1="{MARGIN_LEFT}" y1="{yy:.1f}" x2="{MARGIN_LEFT + plot_w}" '
                   f'y2="{yy:.1f}" stroke="#e9ecef"/>')
        out.append(f'<text x="{MARGIN_LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">'
                   f'{escape(y_format(y))}</text>')
    for x in xs:
        xx = px(x)
        out.append(f'<line x1="{xx:.1f}" y1="{MARGIN_TOP}" x2="{xx:.1f}" '
                   f'y2="{MARGIN_TOP + plot_h}" stroke="#f1f3f5"/>')
        out.append(f'<text x="{xx:.1f}" y="{MARGIN_TOP + plot_h + 16}" text-anchor="middle">'
                   f'{escape(x_format(x))}</text>')
    # Axes and their labels.
    out.append(f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{plot_w}" height="{plot_h}" '
               f'fill="none" stroke="#343a40"/>')
    out.append(f'<text x="{MARGIN_LEFT + plot_w / 2:.0f}" y="{HEIGHT - 18}" '
               f'text-anchor="middle">{escape(x_label)} (log scale)</text>')
    y_mid = MARGIN_TOP + plot_h / 2
    out.append(f'<text x="18" y="{y_mid:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 18 {y_mid:.0f})">{escape(y_label)}'
               f'{" (log scale)" if y_log else ""}</text>')
    # Lines, markers, legend.
    colour_index = 0
    clamped = []
    for index, s in enumerate(series):
        if s.get("dashed"):
            colour = CEILING_COLOUR
        else:
            colour = COLOURS[colour_index % len(COLOURS)]
            colour_index += 1
        dash = ' stroke-dasharray="6 4"' if s.get("dashed") else ""
        runs, current = [], []
        for x, y in sorted(s["points"], key=lambda p: p[0]):
            if y is None:
                if current:
                    runs.append(current)
                current = []
            elif y_log and y <= 0:
                # A log axis cannot show it: drawn at the floor, hollow, and footnoted.
                current.append((px(x), py(y_low), True))
                clamped.append((s["name"], x, y))
            else:
                current.append((px(x), py(y), False))
        if current:
            runs.append(current)
        for run in runs:
            points = " ".join(f"{a:.1f},{b:.1f}" for a, b, _ in run)
            out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                       f'stroke-width="2"{dash}/>')
            for a, b, floor in run:
                fill = "white" if floor else colour
                out.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{fill}" '
                           f'stroke="{colour}"/>')
        ly = MARGIN_TOP + 14 + index * 20
        lx = MARGIN_LEFT + plot_w + 14
        out.append(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 24}" y2="{ly - 4}" '
                   f'stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{lx + 30}" y="{ly}">{escape(s["name"])}</text>')
    if clamped:
        what = "; ".join(f"{name} at {x_format(x)}: {y_format(y) if y else 0}"
                         for name, x, y in clamped)
        out.append(f'<text x="{MARGIN_LEFT}" y="{HEIGHT - 4}" font-size="10" fill="#555">'
                   f'{escape("hollow marker at the floor: measured ≤ 0, off a log axis (" + what + ")")}'
                   f'</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    import sys
    sizes = [16, 64, 256, 1024, 4096, 16384, 65536]
    line_chart(sys.argv[1] if len(sys.argv) > 1 else "demo.svg", "demo", "payload", "B/s", [
        {"name": "a", "points": [(s, s * 1e5) for s in sizes]},
        {"name": "b", "points": [(s, s * 5e4 if s != 256 else None) for s in sizes]},
        {"name": "ceiling", "points": [(s, s * 2e5) for s in sizes], "dashed": True},
    ], x_format=binary, y_format=lambda v: si(v, "B/s"))
