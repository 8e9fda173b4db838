"""Measurement and algebra problems: sector areas, cuboids, linear functions."""

from __future__ import annotations

import random
from fractions import Fraction

from .base import Problem, distinct, fmt


def sector_area(rng: random.Random) -> Problem:
    while True:
        r = rng.choice([3, 4, 5, 6, 8, 9, 10, 12])
        th = rng.choice([30, 45, 60, 90, 120, 135, 150, 240, 270])
        coef = Fraction(th * r * r, 360)
        if coef.denominator <= 2:
            break
    v = (fmt(coef) if coef != 1 else "") + "π"
    if coef.denominator == 2:
        v = f"{coef.numerator}π/2"
    stmt = f"The figure shows a sector of a circle with radius {r} and central angle {th}°. What is the area of the sector? (Leave your answer in terms of π.)"
    wr = [f"{fmt(coef * 2)}π", f"{fmt(Fraction(th * r, 360) * 2)}π", f"{r * r}π", f"{fmt(coef + 1)}π"]

    def whatif(r_: random.Random) -> str:
        t2 = 15 * r_.randint(1, 23)
        r2 = r_.randint(2, 20)
        return r_.choice([
            f"For comparison, a {t2}° sector of the same circle would have area {fmt(Fraction(t2 * r * r, 360))}π, and of a radius-{r2} circle {fmt(Fraction(t2 * r2 * r2, 360))}π.",
            f"The whole circle has area {r * r}π; a circle of radius {r2} would have {r2 * r2}π, and a {t2}° slice of it {fmt(Fraction(t2 * r2 * r2, 360))}π.",
            f"Had the radius been {r2} and the angle {t2}°, the sector would have area {fmt(Fraction(t2 * r2 * r2, 360))}π instead.",
            f"The arc length of this sector is {fmt(Fraction(th * 2 * r, 360))}π, while a {t2}° arc would be {fmt(Fraction(t2 * 2 * r, 360))}π; I must not mix up arc and area.",
        ])

    return Problem(
        kind="sector_area",
        figure={"r": r, "theta": th, "start": rng.choice([0, 15, 30, 90, 200])},
        image_type="Geometric Diagram",
        scene=f"A circle with a shaded sector whose central angle is {th}° and whose radius is labeled {r}.",
        statement=stmt,
        statement_zh=f"如图，扇形的半径为{r}，圆心角为{th}°，则该扇形的面积为（　　）（结果保留π）",
        goal="the area of the sector", givens=[f"r = {r}", f"central angle = {th}°"],
        value=v, plain=v, distractors=distinct(v, wr, rng, lambda: f"{rng.randint(2, 40)}π"),
        principle="a sector with central angle θ takes up θ/360 of the whole disc, so its area is (θ/360)·πr²",
        principle_zh="扇形面积公式 S = nπr²/360",
        calc=f"S = {th}/360 × π × {r}² = {v}",
        steps=[f"The full circle has area π × {r}² = {r * r}π.",
               f"The sector is {th}/360 = {fmt(Fraction(th, 360))} of the circle.",
               f"So the area is {fmt(Fraction(th, 360))} × {r * r}π = {v}."],
        checks=[f"{th}° is {'more' if th > 180 else 'less'} than half a turn, so the area should be {'more' if th > 180 else 'less'} than {fmt(Fraction(r * r, 2))}π, and it is.",
                f"Units: the radius is a length, so the area is in square units."],
        components=[("Circle Outline", "None", "the full circle drawn with a thin line"),
                    ("Center", "O", "a dot at the center of the circle"),
                    ("Shaded Sector", "None", "a filled wedge bounded by two radii"),
                    ("Radius Label", f"r = {r}", "text placed along one bounding radius"),
                    ("Angle Label", f"{th}°", "the central angle written near the center")],
        relations=["Both bounding radii start at O.", "The shaded wedge spans the labeled central angle."],
        inferred=["Sector area is proportional to the central angle.", f"The whole disc has area {r * r}π."],
        pitfalls=[("use the arc-length formula instead of the area formula", wr[1]),
                  ("forget to scale by the central angle", f"{r * r}π")],
        whatif=whatif,
        context=["A pizza slice has the shape of the sector shown.", "A lawn sprinkler waters the sector-shaped region in the figure.",
                 "A folding fan opens into the sector in the figure."],
    )


def cuboid(rng: random.Random) -> Problem:
    l, w, h = rng.randint(3, 12), rng.randint(2, 9), rng.randint(2, 10)
    vol = rng.random() < 0.65
    if vol:
        val = l * w * h
        goal, stmt = "the volume of the cuboid", f"The cuboid in the figure has length {l}, width {w} and height {h}. What is its volume?"
        principle, calc = "the volume of a cuboid is length × width × height", f"V = {l} × {w} × {h} = {val}"
        steps = [f"First the base area: {l} × {w} = {l * w}.", f"Then multiply by the height: {l * w} × {h} = {val}."]
        wr = [str(2 * (l * w + l * h + w * h)), str(l + w + h), str(l * w), str(val + l * w)]
    else:
        val = 2 * (l * w + l * h + w * h)
        goal, stmt = "the total surface area of the cuboid", f"The cuboid in the figure has length {l}, width {w} and height {h}. What is its total surface area?"
        principle, calc = "the surface area of a cuboid is 2(lw + lh + wh)", f"S = 2({l}×{w} + {l}×{h} + {w}×{h}) = {val}"
        steps = [f"The three distinct faces have areas {l * w}, {l * h} and {w * h}.",
                 f"Their sum is {l * w + l * h + w * h}, and each face appears twice, so the total is {val}."]
        wr = [str(l * w * h), str(l * w + l * h + w * h), str(val + 2 * w * h), str(4 * (l + w + h))]

    def whatif(r: random.Random) -> str:
        e = r.randint(1, 40)
        return r.choice([
            f"If the height were {h + e}, the volume would be {l * w * (h + e)}, so each extra unit of height adds {l * w}.",
            f"If the length were {l + e} instead, the volume would become {(l + e) * w * h}.",
            f"Multiplying the width by {e + 1} would multiply the volume by {e + 1}, giving {(e + 1) * l * w * h}.",
            f"A box of {l} by {w} by {e} would hold {l * w * e}, which shows how strongly the height matters.",
        ])

    return Problem(
        kind="cuboid",
        figure={"l": l, "w": w, "h": h},
        image_type="Geometric Diagram",
        scene="A cuboid drawn in oblique projection with hidden edges dashed and its three dimensions labeled.",
        statement=stmt,
        statement_zh=f"如图，长方体的长为{l}，宽为{w}，高为{h}，则它的{'体积' if vol else '表面积'}为（　　）",
        goal=goal, givens=[f"length = {l}", f"width = {w}", f"height = {h}"],
        value=str(val), plain=str(val), distractors=distinct(str(val), wr, rng, lambda: str(val + rng.randint(3, 30))),
        principle=principle, principle_zh="长方体体积 = 长 × 宽 × 高" if vol else "长方体表面积 = 2(长×宽 + 长×高 + 宽×高)",
        calc=calc, steps=steps,
        checks=[f"All three edges {l}, {w} and {h} are visible in the drawing, labeled on the front, the depth and the vertical edge.",
                f"Recomputing in a different order: {w} × {h} = {w * h}, times {l} gives {l * w * h} for the volume."],
        components=[("Front Face", "None", "a rectangle drawn with solid lines"),
                    ("Depth Edges", "None", "parallel slanted edges showing the third dimension"),
                    ("Hidden Edges", "None", "dashed lines for the edges at the back"),
                    ("Length Label", str(l), "a number written under the front bottom edge"),
                    ("Width Label", str(w), "a number written next to a slanted depth edge"),
                    ("Height Label", str(h), "a number written beside the front vertical edge")],
        relations=["Opposite faces of the solid are congruent rectangles.", "The dashed edges meet at the hidden back-bottom corner."],
        inferred=["All faces are rectangles, so the solid is a right rectangular prism.", "The three labeled edges are mutually perpendicular."],
        pitfalls=[("add the dimensions instead of multiplying", str(l + w + h)),
                  ("compute only the base area", str(l * w))],
        whatif=whatif,
        context=["An architect is selecting a decorative block for a facade.", "A fish tank has the shape shown in the figure.",
                 "A shipping carton is shown in the figure.", "A carpenter is building a storage box."],
    )


def linear_function(rng: random.Random) -> Problem:
    while True:
        a = rng.choice([-4, -3, -2, -1, 1, 2, 3, 4])
        b = rng.randint(-6, 8)
        x0 = rng.randint(1, 5)
        if b != 0 and abs(a * x0 + b) <= 14:
            break
    y0 = a * x0 + b
    zero = Fraction(-b, a)
    zs = fmt(zero)
    fx = f"{'-' if a < 0 else ''}{abs(a) if abs(a) != 1 else ''}x {'+' if b > 0 else '−'} {abs(b)}"
    stmt = (f"Displayed is the graph of f(x) = a*x {'+' if b > 0 else '-'} {abs(b)}, under the constraint that a is non-zero. "
            f"For x={x0}, the function value is {y0}. Find the zero of the function.")
    wr = [fmt(Fraction(b, a)), fmt(Fraction(-a, b)) if b else "1", fmt(zero + 1), fmt(Fraction(-b, a + 1)) if a != -1 else "2"]

    def whatif(r: random.Random) -> str:
        t = r.randint(-30, 30)
        return r.choice([
            f"Plugging in another point as a check: f({t}) = {a}·({t}) {'+' if b > 0 else '−'} {abs(b)} = {a * t + b}.",
            f"The slope {a} means that going from x = {t} to x = {t + 1} the value changes from {a * t + b} to {a * (t + 1) + b}.",
            f"If the intercept were {b + t} instead, the zero would move to {fmt(Fraction(-(b + t), a))}.",
            f"A line through ({x0}, {y0}) with slope {t if t else 1} would cross the x-axis somewhere else, so finding a first is essential.",
        ])

    return Problem(
        kind="linear_function",
        figure={"a": a, "b": b, "x0": x0, "y0": y0},
        image_type="Mathematical Plot / Chart",
        scene=f"A Cartesian coordinate system with a straight line crossing the y-axis at {b} and a marked point ({x0}, {y0}) on the line.",
        statement=stmt,
        statement_zh=f"如图是函数f(x)=ax{'+' if b > 0 else '-'}{abs(b)}（a≠0）的图象，已知当x={x0}时，函数值为{y0}，求该函数的零点。",
        goal="the zero of the function", givens=[f"f(x) = ax {'+' if b > 0 else '−'} {abs(b)}", f"f({x0}) = {y0}"],
        value=zs, plain=zs, distractors=distinct(zs, wr, rng, lambda: str(rng.randint(-5, 9))),
        principle="a zero of a function is an x-value where f(x) = 0, i.e. where the graph crosses the x-axis",
        principle_zh="函数的零点就是使f(x)=0的x的值",
        calc=f"{y0} = {x0}a {'+' if b > 0 else '−'} {abs(b)} ⇒ a = {a}; {fx} = 0 ⇒ x = {zs}",
        steps=[f"Substituting x = {x0}: {y0} = {x0}a {'+' if b > 0 else '−'} {abs(b)}.",
               f"So {x0}a = {y0 - b}, which gives a = {a}.",
               f"The function is f(x) = {fx}.",
               f"Setting f(x) = 0 gives {a}x = {-b}, so x = {zs}."],
        checks=[f"f({zs}) = {a}·{zs} {'+' if b > 0 else '−'} {abs(b)} = 0, good.",
                f"The graph crosses the x-axis {'to the right of' if zero > 0 else 'to the left of'} the origin, consistent with x = {zs}.",
                f"Also f({x0}) = {a}·{x0} {'+' if b > 0 else '−'} {abs(b)} = {y0}, matching the marked point."],
        components=[("X-axis", "x", "a horizontal axis with an arrowhead and integer tick marks"),
                    ("Y-axis", "y", "a vertical axis with an arrowhead and integer tick marks"),
                    ("Origin", "O", "the intersection of the axes"),
                    ("Line", "None", f"a straight line with {'positive' if a > 0 else 'negative'} slope"),
                    ("Point", f"({x0}, {y0})", "a solid dot on the line with its coordinates written beside it")],
        relations=[f"The line crosses the y-axis at {b}.", f"The labeled point ({x0}, {y0}) lies on the line."],
        inferred=[f"The y-intercept {b} is the constant term of f(x).", "The zero is where the line meets the x-axis."],
        pitfalls=[("drop the minus sign when solving ax + b = 0", wr[0]), ("swap a and b", wr[1])],
        whatif=whatif,
        context=["A taxi fare grows linearly with distance, as graphed.", "The water level in a tank changes linearly over time, as shown."],
    )
