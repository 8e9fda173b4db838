"""Pillow drawings of the sample problems.

Figures are drawn from the same parameters as the question text, so that a
caption saying "∠A = 62°" sits next to a picture with a 62° arc. Rendering is
deterministic: Pillow's bundled default font (no system fonts), no randomness
beyond the problem's own parameters and the canvas size.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from .problems import Problem

PALETTE = ["#4472c4", "#ed7d31", "#a5a5a5", "#ffc000", "#5b9bd5", "#70ad47", "#9e480e", "#636363"]
INK = (20, 20, 20)


@lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


class Canvas:
    """A white image with a logical, y-up coordinate system fitted to ``bounds``."""

    def __init__(self, size: tuple[int, int], bounds: tuple[float, float, float, float], margin: float = 0.13,
                 uniform: bool = True):
        self.img = Image.new("RGB", size, "white")
        self.draw = ImageDraw.Draw(self.img)
        w, h = size
        x0, y0, x1, y1 = bounds
        self.sx = w * (1 - 2 * margin) / (x1 - x0)
        self.sy = h * (1 - 2 * margin) / (y1 - y0)
        if uniform:  # geometry keeps its shape; charts stretch to fill the canvas
            self.sx = self.sy = min(self.sx, self.sy)
        self.s = self.sx
        self.ox = (w - self.sx * (x1 - x0)) / 2 - self.sx * x0
        self.oy = (h + self.sy * (y1 - y0)) / 2 + self.sy * y0
        self.lw = max(2, round(min(size) / 170))
        self.fs = max(12, round(min(size) / 17))

    def pt(self, p: tuple[float, float]) -> tuple[float, float]:
        return (self.ox + self.sx * p[0], self.oy - self.sy * p[1])

    def line(self, p, q, width=None, fill=INK, dash: bool = False) -> None:
        a, b = self.pt(p), self.pt(q)
        w = width or self.lw
        if not dash:
            self.draw.line([a, b], fill=fill, width=w)
            return
        n = max(2, int(math.dist(a, b) / (w * 5)))
        for i in range(0, n, 2):
            t0, t1 = i / n, min(1.0, (i + 1) / n)
            self.draw.line([(a[0] + (b[0] - a[0]) * t0, a[1] + (b[1] - a[1]) * t0),
                            (a[0] + (b[0] - a[0]) * t1, a[1] + (b[1] - a[1]) * t1)], fill=fill, width=w)

    def poly(self, pts, fill=None, outline=INK) -> None:
        self.draw.polygon([self.pt(p) for p in pts], fill=fill, outline=outline, width=self.lw)

    def text(self, p, s: str, size: float = 1.0, fill=INK, anchor: str = "mm") -> None:
        self.draw.text(self.pt(p), s, font=_font(max(10, round(self.fs * size))), fill=fill, anchor=anchor)

    def dot(self, p, r: float | None = None, fill=INK) -> None:
        x, y = self.pt(p)
        r = r or self.lw * 1.8
        self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def arc(self, c, radius_px: float, a0: float, a1: float, width=None) -> None:
        """Counter-clockwise arc from logical angle a0 to a1 (degrees, y-up)."""
        x, y = self.pt(c)
        self.draw.arc((x - radius_px, y - radius_px, x + radius_px, y + radius_px), -a1, -a0,
                      fill=INK, width=width or max(1, self.lw - 1))

    def label_out(self, p, centre, s: str, dist_px: float | None = None) -> None:
        """Write ``s`` next to point ``p``, pushed away from ``centre``."""
        x, y = self.pt(p)
        cx, cy = self.pt(centre)
        d = math.hypot(x - cx, y - cy) or 1.0
        k = dist_px or self.fs * 0.9
        self.draw.text((x + (x - cx) / d * k, y + (y - cy) / d * k), s, font=_font(self.fs), fill=INK, anchor="mm")


def _angle(p, q) -> float:
    return math.degrees(math.atan2(q[1] - p[1], q[0] - p[0]))


def _mark_angle(cv: Canvas, v, p, q, text: str | None, r_px: float | None = None) -> None:
    """Arc inside angle p-v-q with an optional label on its bisector."""
    a0, a1 = _angle(v, p), _angle(v, q)
    if (a1 - a0) % 360 > 180:
        a0, a1 = a1, a0
    a1 = a0 + (a1 - a0) % 360
    r = r_px or cv.fs * 1.6
    cv.arc(v, r, a0, a1)
    if text:
        mid = math.radians((a0 + a1) / 2)
        x, y = cv.pt(v)
        k = r + cv.fs * 1.2
        cv.draw.text((x + k * math.cos(mid), y - k * math.sin(mid)), text, font=_font(round(cv.fs * 0.85)), fill=INK, anchor="mm")


# --------------------------------------------------------------------------- figures


def _triangle_angles(f: dict, size) -> Image.Image:
    a, b, _ = f["angles"]
    ta, tb = math.tan(math.radians(a)), math.tan(math.radians(b))
    cx = tb / (ta + tb) * 10
    A, B, C = (0.0, 0.0), (10.0, 0.0), (cx, cx * ta)
    cv = Canvas(size, (min(0, cx) - 1, -1, max(10, cx) + 1, C[1] + 1))
    cv.poly([A, B, C])
    g = ((A[0] + B[0] + C[0]) / 3, (A[1] + B[1] + C[1]) / 3)
    for p, s in zip((A, B, C), f["labels"]):
        cv.label_out(p, g, s)
    _mark_angle(cv, A, B, C, f"{a}°")
    _mark_angle(cv, B, C, A, f"{b}°")
    _mark_angle(cv, C, A, B, "?")
    return cv.img


def _right_triangle(f: dict, size) -> Image.Image:
    a, b = f["legs"]
    A, B, C = (0.0, float(a)), (float(b), 0.0), (0.0, 0.0)
    cv = Canvas(size, (-0.15 * b, -0.15 * a, 1.15 * b, 1.15 * a))
    cv.poly([A, B, C])
    g = (b / 3, a / 3)
    for p, s in zip((A, B, C), f["labels"]):
        cv.label_out(p, g, s)
    k = 0.08 * min(a, b)
    cv.line((k, 0), (k, k), width=max(1, cv.lw - 1))
    cv.line((0, k), (k, k), width=max(1, cv.lw - 1))
    st = f["side_text"]
    cv.text((-0.07 * b, a / 2), st["AC"], anchor="rm")
    cv.text((b / 2, -0.07 * a), st["BC"], anchor="mt")
    cv.text((b / 2 + 0.06 * b, a / 2 + 0.06 * a), st["AB"], anchor="lb")
    return cv.img


def _perpendicular_bisector(f: dict, size) -> Image.Image:
    cx, cy = f["C"]
    A, B, C = (0.0, 0.0), (10.0, 0.0), (cx, cy)
    D, E = (5.0, 5.0 * cy / cx), (5.0, 0.0)
    cv = Canvas(size, (-1, -1, 11, cy + 1))
    cv.poly([A, B, C])
    cv.line(E, (5.0, D[1] + 0.9))
    cv.line(B, D)
    g = (5, cy / 3)
    for p, s in ((A, "A"), (B, "B"), (C, "C")):
        cv.label_out(p, g, s)
    cv.text((D[0] - 0.5, D[1] + 0.35), "D")
    cv.text((E[0] + 0.4, E[1] - 0.45), "E")
    cv.line((5.0, 0.35), (5.35, 0.35), width=max(1, cv.lw - 1))
    cv.line((5.35, 0.0), (5.35, 0.35), width=max(1, cv.lw - 1))
    for x in (2.5, 7.5):
        for dx in (-0.12, 0.12):
            cv.line((x + dx, -0.25), (x + dx, 0.25), width=max(1, cv.lw - 1))
    return cv.img


def _circle_inscribed_angle(f: dict, size) -> Image.Image:
    x, st = f["x"], f["start"]
    cv = Canvas(size, (-1.35, -1.35, 1.35, 1.35))
    O = (0.0, 0.0)
    ox, oy = cv.pt(O)
    r = cv.s
    cv.draw.ellipse((ox - r, oy - r, ox + r, oy + r), outline=INK, width=cv.lw)
    on = lambda d: (math.cos(math.radians(d)), math.sin(math.radians(d)))  # noqa: E731
    A, B = on(st), on(st + 2 * x)
    C = on(st + x + 180 + (x / 3))
    for p, q in ((O, A), (O, B), (C, A), (C, B)):
        cv.line(p, q)
    for p, s in ((A, "A"), (B, "B"), (C, "C")):
        cv.dot(p)
        cv.label_out(p, O, s)
    cv.dot(O)
    cv.text((0.0, -0.14), "O", size=0.9)
    if f["show_central"]:
        _mark_angle(cv, O, A, B, f"{2 * x}°", r_px=cv.fs * 1.3)
    else:
        _mark_angle(cv, C, A, B, f"{x}°", r_px=cv.fs * 1.5)
    return cv.img


def _parallel_lines(f: dict, size) -> Image.Image:
    x, rel = f["x"], f["rel"]
    cv = Canvas(size, (-5.5, -3.2, 5.5, 3.2))
    for y, s in ((1.6, "a"), (-1.6, "b")):
        cv.line((-5, y), (5, y))
        cv.text((5.3, y), s, anchor="lm")
    t = math.tan(math.radians(x))
    P, Q = (1.6 / t, 1.6), (-1.6 / t, -1.6)
    cv.line((-3.0 / t, -3.0), (3.0 / t, 3.0))
    cv.text((3.0 / t + 0.3, 2.9), "c", anchor="lm")
    bis = {"UR": x / 2, "UL": (x + 180) / 2, "LL": 180 + x / 2, "LR": (180 + x + 360) / 2}
    spots = {"corresponding": (("P", "UR"), ("Q", "UR")), "alternate interior": (("P", "LL"), ("Q", "UR")),
             "same-side interior": (("Q", "UR"), ("P", "LR"))}[rel]
    for (where, quad), s in zip(spots, ("1", "2")):
        v = P if where == "P" else Q
        a0 = {"UR": 0, "UL": x, "LL": 180, "LR": 180 + x}[quad]
        a1 = {"UR": x, "UL": 180, "LL": 180 + x, "LR": 360}[quad]
        cv.arc(v, cv.fs * 1.1, a0, a1)
        ang = math.radians(bis[quad])
        px, py = cv.pt(v)
        k = cv.fs * 2.1
        cv.draw.text((px + k * math.cos(ang), py - k * math.sin(ang)), s, font=_font(cv.fs), fill=INK, anchor="mm")
    return cv.img


def _sector_area(f: dict, size) -> Image.Image:
    r, th, st = f["r"], f["theta"], f["start"]
    cv = Canvas(size, (-1.3, -1.3, 1.3, 1.3))
    ox, oy = cv.pt((0, 0))
    R = cv.s
    cv.draw.ellipse((ox - R, oy - R, ox + R, oy + R), outline=(120, 120, 120), width=max(1, cv.lw - 1))
    cv.draw.pieslice((ox - R, oy - R, ox + R, oy + R), -(st + th), -st, fill=(190, 215, 240), outline=INK, width=cv.lw)
    cv.dot((0, 0))
    cv.text((-0.12, -0.12), "O", size=0.9)
    mid = math.radians(st + th / 2)
    cv.text((0.33 * math.cos(mid), 0.33 * math.sin(mid)), f"{th}°", size=0.85)
    e = math.radians(st)
    cv.text((0.62 * math.cos(e) + 0.2 * math.sin(e), 0.62 * math.sin(e) - 0.2 * math.cos(e)), f"r = {r}", size=0.85)
    return cv.img


def _cuboid(f: dict, size) -> Image.Image:
    l, w, h = f["l"], f["w"], f["h"]
    dx, dy = 0.45 * w, 0.35 * w
    cv = Canvas(size, (-1.2, -1.4, l + dx + 1.2, h + dy + 0.8))
    front = [(0, 0), (l, 0), (l, h), (0, h)]
    cv.poly(front)
    cv.line((0, h), (dx, h + dy))
    cv.line((l, h), (l + dx, h + dy))
    cv.line((l, 0), (l + dx, dy))
    cv.line((dx, h + dy), (l + dx, h + dy))
    cv.line((l + dx, dy), (l + dx, h + dy))
    cv.line((0, 0), (dx, dy), dash=True)
    cv.line((dx, dy), (l + dx, dy), dash=True)
    cv.line((dx, dy), (dx, h + dy), dash=True)
    cv.text((l / 2, -0.5), str(l))
    cv.text((l + dx / 2 + 0.45, dy / 2 - 0.15), str(w))
    cv.text((-0.5, h / 2), str(h))
    return cv.img


def _linear_function(f: dict, size) -> Image.Image:
    a, b, x0, y0 = f["a"], f["b"], f["x0"], f["y0"]
    zero = -b / a
    xs = [0, x0, zero]
    ys = [0, b, y0]
    x_lo, x_hi = math.floor(min(xs)) - 2, math.ceil(max(xs)) + 2
    y_lo, y_hi = math.floor(min(ys)) - 2, math.ceil(max(ys)) + 2
    cv = Canvas(size, (x_lo, y_lo, x_hi, y_hi), margin=0.08, uniform=False)
    grid = (225, 225, 225)
    for gx in range(x_lo, x_hi + 1):
        cv.line((gx, y_lo), (gx, y_hi), width=1, fill=grid)
    for gy in range(y_lo, y_hi + 1):
        cv.line((x_lo, gy), (x_hi, gy), width=1, fill=grid)
    cv.line((x_lo, 0), (x_hi, 0))
    cv.line((0, y_lo), (0, y_hi))
    cv.text((x_hi - 0.2, 0.45), "x", size=0.9)
    cv.text((0.35, y_hi - 0.3), "y", size=0.9)
    cv.text((-0.35, -0.5), "O", size=0.8)
    # clip the line to the plotted window
    xa = max(x_lo, min((y_lo - b) / a, (y_hi - b) / a))
    xb = min(x_hi, max((y_lo - b) / a, (y_hi - b) / a))
    cv.line((xa, a * xa + b), (xb, a * xb + b), fill=(30, 90, 200), width=cv.lw + 1)
    cv.dot((x0, y0))
    cv.text((x0 + 0.3, y0 + (0.6 if a < 0 else -0.6)), f"({x0}, {y0})", size=0.8, anchor="lm")
    return cv.img


def _bar_chart(f: dict, size) -> Image.Image:
    cats, vals = f["cats"], f["vals"]
    top = max(vals) * 1.2
    n = len(cats)
    cv = Canvas(size, (-1.6, -0.16 * top, n + 0.3, top * 1.12), margin=0.06, uniform=False)
    cv.text((n / 2 - 0.6, top * 1.08), f["title"], size=0.9)
    cv.line((0, 0), (n, 0))
    cv.line((0, 0), (0, top))
    step = 10 ** math.floor(math.log10(top / 2))
    step *= 2 if top / step > 10 else 1
    for k in range(0, int(top / step) + 1):
        yv = k * step
        cv.line((0, yv), (n, yv), width=1, fill=(225, 225, 225))
        cv.text((-0.1, yv), str(int(yv)), size=0.6, anchor="rm")
    color = PALETTE[len(f["title"]) % len(PALETTE)]
    for i, (c, v) in enumerate(zip(cats, vals)):
        cv.poly([(i + 0.2, 0), (i + 0.8, 0), (i + 0.8, v), (i + 0.2, v)], fill=color, outline=color)
        cv.text((i + 0.5, v + top * 0.035), str(v), size=0.65)
        cv.text((i + 0.5, -top * 0.05), c, size=0.6)
    cv.text((-1.2, top / 2), f["ylabel"].split(" (")[0], size=0.6)
    return cv.img


def _pie_chart(f: dict, size) -> Image.Image:
    cats, pcts = f["cats"], f["pcts"]
    cv = Canvas(size, (-1.8, -1.45, 1.8, 1.5), margin=0.04)
    ox, oy = cv.pt((0, 0))
    R = cv.s
    a = 90.0
    for i, (c, p) in enumerate(zip(cats, pcts)):
        span = 3.6 * p
        cv.draw.pieslice((ox - R, oy - R, ox + R, oy + R), -(a + span), -a, fill=PALETTE[i % len(PALETTE)], outline="white", width=2)
        mid = math.radians(a + span / 2)
        cv.text((1.28 * math.cos(mid), 1.2 * math.sin(mid)), f"{c} {p}%", size=0.6)
        a += span
    cv.text((0, 1.4), f["title"], size=0.75)
    return cv.img


def _resistor(cv: Canvas, p, q, vertical: bool) -> None:
    n = 6
    pts = []
    for i in range(n + 1):
        t = i / n
        off = 0 if i in (0, n) else (0.22 if i % 2 else -0.22)
        if vertical:
            pts.append((p[0] + off, p[1] + (q[1] - p[1]) * t))
        else:
            pts.append((p[0] + (q[0] - p[0]) * t, p[1] + off))
    for u, v in zip(pts, pts[1:]):
        cv.line(u, v)


def _circuit(f: dict, size) -> Image.Image:
    cv = Canvas(size, (-1.5, -1.2, 9.5, 5.6))
    # battery on the left edge
    cv.line((0, 0), (0, 1.7))
    cv.line((-0.6, 1.7), (0.6, 1.7), width=cv.lw + 1)
    cv.line((-0.3, 2.1), (0.3, 2.1), width=cv.lw + 2)
    cv.line((0, 2.1), (0, 4))
    cv.text((-0.9, 1.9), f"{f['volt']} V", size=0.8, anchor="rm")
    if f["series"]:
        cv.line((0, 4), (2, 4)); _resistor(cv, (2, 4), (4, 4), False); cv.line((4, 4), (8, 4))
        cv.line((8, 4), (8, 3)); _resistor(cv, (8, 3), (8, 1), True); cv.line((8, 1), (8, 0)); cv.line((8, 0), (0, 0))
        cv.text((3, 4.6), f"R1 = {f['r1']} ohm", size=0.75)
        cv.text((8.4, 2), f"R2 = {f['r2']} ohm", size=0.75, anchor="lm")
    else:
        cv.line((0, 4), (5, 4)); cv.line((0, 0), (5, 0))
        for x, lab in ((5, f"R1 = {f['r1']} ohm"), (8, f"R2 = {f['r2']} ohm")):
            cv.line((x, 4), (x, 3)); _resistor(cv, (x, 3), (x, 1), True); cv.line((x, 1), (x, 0))
            cv.text((x - 0.4, 2), lab, size=0.7, anchor="rm")
        cv.line((5, 4), (8, 4)); cv.line((5, 0), (8, 0))
        cv.dot((5, 4)); cv.dot((5, 0))
    return cv.img


def _incline(f: dict, size) -> Image.Image:
    th = math.radians(f["theta"])
    L = 10.0
    H = L * math.tan(th)
    cv = Canvas(size, (-1, -1, L + 1, H + 1.2))
    cv.poly([(0, 0), (L, 0), (L, H)], fill=(235, 235, 235))
    _mark_angle(cv, (0, 0), (L, 0), (L, H), f"{f['theta']}°", r_px=cv.fs * 2.2)
    s = min(2.2, 0.25 * L)
    u, n = (math.cos(th), math.sin(th)), (-math.sin(th), math.cos(th))
    base = (0.55 * L * math.cos(th), 0.55 * L * math.sin(th))
    corners = [base, (base[0] + s * u[0], base[1] + s * u[1]),
               (base[0] + s * u[0] + s * n[0], base[1] + s * u[1] + s * n[1]), (base[0] + s * n[0], base[1] + s * n[1])]
    cv.poly(corners, fill=(200, 170, 120))
    ctr = (base[0] + s / 2 * (u[0] + n[0]), base[1] + s / 2 * (u[1] + n[1]))
    cv.text(ctr, f"{f['m']} kg", size=0.7)
    tip = (ctr[0], ctr[1] - 2.6)
    cv.line(ctr, tip, fill=(200, 30, 30))
    cv.poly([tip, (tip[0] - 0.25, tip[1] + 0.5), (tip[0] + 0.25, tip[1] + 0.5)], fill=(200, 30, 30), outline=(200, 30, 30))
    cv.text((tip[0] + 0.5, tip[1] + 0.3), "mg", size=0.8)
    ntip = (ctr[0] + 2.2 * n[0], ctr[1] + 2.2 * n[1])
    cv.line(ctr, ntip, fill=(30, 90, 200))
    cv.text((ntip[0] - 0.3, ntip[1] + 0.3), "N", size=0.8)
    return cv.img


_DRAWERS = {
    "triangle_angles": _triangle_angles, "right_triangle": _right_triangle,
    "perpendicular_bisector": _perpendicular_bisector, "circle_inscribed_angle": _circle_inscribed_angle,
    "parallel_lines": _parallel_lines, "sector_area": _sector_area, "cuboid": _cuboid,
    "linear_function": _linear_function, "bar_chart": _bar_chart, "pie_chart": _pie_chart,
    "circuit": _circuit, "incline": _incline,
}

# Rough width/height ratio per figure family, so canvases are not all square.
_ASPECT = {"bar_chart": 1.35, "pie_chart": 1.25, "circuit": 1.5, "incline": 1.45, "parallel_lines": 1.5,
           "perpendicular_bisector": 1.4, "linear_function": 1.0, "circle_inscribed_angle": 1.0,
           "sector_area": 1.0, "cuboid": 1.25, "triangle_angles": 1.3, "right_triangle": 1.1}


def figure_size(kind: str, rng: random.Random, longest: int | None = None) -> tuple[int, int]:
    """A plausible canvas size: longest edge 300-800 px unless ``longest`` is given."""
    edge = longest or rng.randint(300, 800)
    r = _ASPECT.get(kind, 1.2) * rng.uniform(0.9, 1.1)
    return (edge, max(16, round(edge / r))) if r >= 1 else (max(16, round(edge * r)), edge)


def draw_figure(problem: Problem, size: tuple[int, int]) -> Image.Image:
    """Render ``problem``'s figure as an RGB image of exactly ``size``."""
    return _DRAWERS[problem.kind](problem.figure, size)
