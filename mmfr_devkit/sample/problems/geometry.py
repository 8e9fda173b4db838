"""Plane geometry problems: triangle angles, Pythagoras, perpendicular bisectors, circles, parallels."""

from __future__ import annotations

import random
from fractions import Fraction

from .base import Problem, distinct, fmt, pick_labels


def triangle_angles(rng: random.Random) -> Problem:
    A, B, C = pick_labels(rng)
    a = rng.randint(35, 85)
    b = rng.randint(30, 145 - a)
    c = 180 - a - b
    big = max(a, b, c)
    shape = "obtuse" if big > 90 else "right" if big == 90 else "acute"
    stmt = rng.choice([
        f"In triangle {A}{B}{C}, ∠{A} = {a}° and ∠{B} = {b}°. What is the measure of ∠{C}?",
        f"As shown in the figure, in △{A}{B}{C}, ∠{A} = {a}° and ∠{B} = {b}°. Find the degree measure of ∠{C}.",
        f"The figure shows triangle {A}{B}{C} with ∠{A} = {a}° and ∠{B} = {b}°. How large is ∠{C}?",
    ])
    d = distinct(f"{c}°", [f"{c + 10}°", f"{c - 10}°", f"{180 - a}°", f"{a + b}°", f"{90 - c}°"], rng,
                  lambda: f"{c + rng.choice([-15, 5, 15, 20])}°")

    def whatif(r: random.Random) -> str:
        k = r.randint(1, min(b, c) - 1)
        return r.choice([
            f"If ∠{A} were {a + k}° instead of {a}°, then ∠{C} would shrink to {c - k}°, so the answer is sensitive to reading {a}° correctly.",
            f"Just to be safe: with ∠{B} = {b - k}° the third angle would be {c + k}°, but the figure clearly says {b}°.",
            f"A triangle with angles {a}°, {b}° and {c + k}° would add up to {180 + k}°, which is impossible, so {c + k}° is out.",
            f"An exterior angle check: the exterior angle at {C} is {180 - c}°, and {k} degrees more at {A} would make it {180 - c + k}°.",
        ])

    return Problem(
        kind="triangle_angles",
        figure={"labels": (A, B, C), "angles": (a, b, c)},
        image_type="Geometric Diagram",
        scene=f"A triangle {A}{B}{C} with two marked interior angles ({a}° at {A} and {b}° at {B}) and an unknown angle at vertex {C}.",
        statement=stmt,
        statement_zh=f"如图，在△{A}{B}{C}中，∠{A}={a}°，∠{B}={b}°，则∠{C}的度数为（　　）",
        goal=f"the measure of ∠{C}",
        givens=[f"∠{A} = {a}°", f"∠{B} = {b}°"],
        value=f"{c}°", plain=str(c), distractors=d,
        principle="the three interior angles of any triangle add up to 180°",
        principle_zh="三角形内角和等于180°",
        calc=f"∠{C} = 180° − {a}° − {b}° = {c}°",
        steps=[
            f"The two known angles together are {a}° + {b}° = {a + b}°.",
            f"That leaves 180° − {a + b}° = {c}° for ∠{C}.",
        ],
        checks=[
            f"Adding all three back up: {a}° + {b}° + {c}° = 180°, so the angle sum works.",
            f"The largest angle is {big}°, so the triangle is {shape}, and the sketch looks {shape} too.",
            f"∠{C} = {c}° is {'larger' if c > a else 'smaller'} than ∠{A} = {a}°, so side {A}{B} should be {'longer' if c > a else 'shorter'} than side {B}{C}, which matches the drawing.",
        ],
        components=[
            ("Vertex", A, "a labeled corner at the lower left end of the base"),
            ("Vertex", B, "a labeled corner at the lower right end of the base"),
            ("Vertex", C, "the apex of the triangle, drawn above the base"),
            ("Angle Mark", f"{a}°", f"a small arc inside the corner at {A} annotated with {a}°"),
            ("Angle Mark", f"{b}°", f"a small arc inside the corner at {B} annotated with {b}°"),
            ("Unknown Angle", "?", f"a question mark placed just inside the angle at {C}"),
        ],
        relations=[
            f"Segments {A}{B}, {B}{C} and {C}{A} join the three vertices into a closed triangle.",
            f"Side {A}{B} runs horizontally along the bottom, with {C} above it.",
            f"The arcs at {A} and {B} mark interior angles, while the question mark flags the unknown angle at {C}.",
        ],
        inferred=[
            f"The interior angle sum of △{A}{B}{C} is 180°.",
            f"∠{C} can be obtained as 180° − ∠{A} − ∠{B}.",
            f"Since no angle is labeled as a right angle, the triangle is drawn as a general {shape} triangle.",
        ],
        pitfalls=[
            (f"subtract only ∠{A} from 180°", f"{180 - a}°"),
            (f"add ∠{A} and ∠{B} and stop there", f"{a + b}°"),
        ],
        whatif=whatif,
        context=["A triangular garden bed is shown in the figure.", "A carpenter cuts a triangular brace as shown.",
                 "The roof truss in the figure forms a triangle."],
    )


_TRIPLES = [(3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25), (20, 21, 29), (9, 40, 41)]


def right_triangle(rng: random.Random) -> Problem:
    A, B, C = pick_labels(rng)
    t = rng.choice(_TRIPLES)
    k = rng.choice([1, 1, 2, 3]) if t[2] < 30 else 1
    a, b, c = (k * t[0], k * t[1], k * t[2])
    unit = rng.choice(["", " cm", " m"])
    find_hyp = rng.random() < 0.6
    if find_hyp:
        stmt = f"In right triangle {A}{B}{C}, ∠{C} = 90°, {A}{C} = {a}{unit} and {B}{C} = {b}{unit}. Find the length of {A}{B}."
        val, goal = c, f"the length of the hypotenuse {A}{B}"
        givens = [f"∠{C} = 90°", f"{A}{C} = {a}{unit}", f"{B}{C} = {b}{unit}"]
        steps = [f"By the Pythagorean theorem, {A}{C}² + {B}{C}² = {A}{B}².",
                 f"So {A}{B}² = {a}² + {b}² = {a * a} + {b * b} = {c * c}.",
                 f"Taking the positive square root, {A}{B} = {c}{unit}."]
        calc = f"{A}{B} = √({a}² + {b}²) = √{c * c} = {c}"
        wrongs = [f"{a + b}{unit}", f"{c + k}{unit}", f"{abs(b - a) + c}{unit}"]
        zh = f"如图，在Rt△{A}{B}{C}中，∠{C}=90°，{A}{C}={a}，{B}{C}={b}，则{A}{B}的长为（　　）"
    else:
        stmt = f"In right triangle {A}{B}{C}, ∠{C} = 90°, the hypotenuse {A}{B} = {c}{unit} and {A}{C} = {a}{unit}. Find {B}{C}."
        val, goal = b, f"the length of the leg {B}{C}"
        givens = [f"∠{C} = 90°", f"{A}{B} = {c}{unit}", f"{A}{C} = {a}{unit}"]
        steps = [f"By the Pythagorean theorem, {B}{C}² = {A}{B}² − {A}{C}².",
                 f"So {B}{C}² = {c * c} − {a * a} = {b * b}.",
                 f"Therefore {B}{C} = √{b * b} = {b}{unit}."]
        calc = f"{B}{C} = √({c}² − {a}²) = √{b * b} = {b}"
        wrongs = [f"{c - a}{unit}", f"{c + a}{unit}", f"{b + k}{unit}"]
        zh = f"如图，在Rt△{A}{B}{C}中，∠{C}=90°，斜边{A}{B}={c}，{A}{C}={a}，则{B}{C}的长为（　　）"
    d = distinct(f"{val}{unit}", wrongs, rng, lambda: f"{val + rng.randint(1, 6)}{unit}")

    def whatif(r: random.Random) -> str:
        e = r.randint(1, 40)
        return r.choice([
            f"If {A}{C} were {a + e} instead of {a}, the square of the hypotenuse would be {(a + e) ** 2 + b * b} rather than {c * c}, so the given numbers matter.",
            f"Scaling check: multiplying every side by {e + 1} gives {a * (e + 1)}, {b * (e + 1)} and {c * (e + 1)}, and {a * (e + 1)}² + {b * (e + 1)}² = {(c * (e + 1)) ** 2} still holds.",
            f"Had I squared wrongly and used {b + e}² = {(b + e) ** 2}, the total would be off by {(b + e) ** 2 - b * b}.",
            f"As a rough bound, {c} must lie between {max(a, b)} and {a + b}; a value like {a + b - e} would be suspicious only if it broke the theorem.",
        ])

    return Problem(
        kind="right_triangle",
        figure={"labels": (A, B, C), "legs": (a, b),
                "side_text": {"AC": str(a), "BC": str(b), "AB": "?"} if find_hyp else {"AC": str(a), "BC": "?", "AB": str(c)}},
        image_type="Geometric Diagram",
        scene=f"A right triangle {A}{B}{C} with the right angle at {C} and two side lengths written next to the sides.",
        statement=stmt, statement_zh=zh, goal=goal, givens=givens,
        value=f"{val}{unit}", plain=str(val), distractors=d,
        principle="in a right triangle the square of the hypotenuse equals the sum of the squares of the legs",
        principle_zh="直角三角形两直角边的平方和等于斜边的平方（勾股定理）",
        calc=calc, steps=steps,
        checks=[
            f"{a}, {b}, {c} is {'the' if k == 1 else f'{k} times the'} {t[0]}-{t[1]}-{t[2]} Pythagorean triple, so the numbers are consistent.",
            f"The hypotenuse {c} is longer than both legs, as it has to be.",
            f"{a * a} + {b * b} really is {c * c}; I recomputed it digit by digit.",
        ],
        components=[
            ("Vertex", C, "the corner holding the right angle, at the lower left"),
            ("Vertex", A, f"the top end of the vertical leg {A}{C}"),
            ("Vertex", B, f"the right end of the horizontal leg {B}{C}"),
            ("Right Angle Marker", "None", f"a small square drawn in the corner at {C}"),
            ("Side Label", f"{a}{unit}".strip() if find_hyp else f"{c}{unit}".strip(),
             f"a number written beside {'leg ' + A + C if find_hyp else 'the hypotenuse ' + A + B}"),
            ("Side Label", f"{b}{unit}".strip() if find_hyp else f"{a}{unit}".strip(),
             f"a number written beside {'leg ' + B + C if find_hyp else 'leg ' + A + C}"),
        ],
        relations=[
            f"Legs {A}{C} and {B}{C} meet at {C} at a right angle.",
            f"The slanted side {A}{B} is opposite the right angle and is the hypotenuse.",
        ],
        inferred=[f"△{A}{B}{C} is a right triangle, so the Pythagorean theorem applies.",
                  f"The unknown side can be found from the other two lengths."],
        pitfalls=[("add the two given sides instead of using squares", wrongs[0]),
                  ("mix up which side is the hypotenuse", wrongs[1])],
        whatif=whatif,
        context=["A ladder leans against a wall as shown.", "A wheelchair ramp has the cross-section shown in the figure.",
                 "A kite string, the ground and a vertical pole form the right triangle in the figure."],
    )


def perpendicular_bisector(rng: random.Random) -> Problem:
    ac = rng.randint(8, 16)
    bc = rng.randint(4, ac - 2)
    p = ac + bc
    cx, cy = rng.uniform(6.6, 9.4), rng.uniform(4.5, 7.2)
    stmt = rng.choice([
        f"In the given figure, triangle ABC is depicted. The perpendicular bisector of side AB intersects side AC at point D. If side AC is measured at {ac}.0 units and side BC is measured at {bc}.0 units, what is the perimeter of triangle BCD?",
        f"As shown in the figure, in △ABC, DE is the perpendicular bisector of AB and meets AC at D. If AC = {ac} cm and BC = {bc} cm, what is the perimeter of △BCD?",
    ])
    wr = [f"{p + 1}cm", f"{p - 1}cm", f"{ac + 2 * bc}cm", f"{2 * ac}cm"]

    def whatif(r: random.Random) -> str:
        e = r.randint(1, 40)
        return r.choice([
            f"If AC were {ac + e} instead, the perimeter would become {p + e}; it moves one-for-one with AC, because CD + DB always equals AC.",
            f"Where exactly D sits on AC doesn't matter: if AD were {e} units longer, CD would be {e} units shorter and the total would not change.",
            f"Changing BC to {bc + e} would give {p + e}, so the answer depends only on AC and BC.",
            f"Even if AB were {e + 3} units long, the perimeter of BCD would still be {p}, since AB never enters the sum.",
        ])

    return Problem(
        kind="perpendicular_bisector",
        figure={"C": (cx, cy)},
        image_type="Geometric Diagram",
        scene="Triangle ABC with the perpendicular bisector of AB drawn through its midpoint E and meeting side AC at D; segment BD is also drawn.",
        statement=stmt,
        statement_zh=f"如图，在△ABC中，DE是AB的垂直平分线，交AC于点D，已知AC={ac}cm，BC={bc}cm，则△BCD的周长是（　　）",
        goal="the perimeter of triangle BCD",
        givens=[f"AC = {ac}", f"BC = {bc}", "DE is the perpendicular bisector of AB"],
        value=f"{p}cm", plain=str(p), distractors=distinct(f"{p}cm", wr, rng, lambda: f"{p + rng.randint(2, 5)}cm"),
        principle="every point on the perpendicular bisector of a segment is equidistant from the segment's endpoints",
        principle_zh="线段垂直平分线上的点到线段两端的距离相等",
        calc=f"C(BCD) = BC + CD + DB = BC + CD + DA = BC + AC = {bc} + {ac} = {p}",
        steps=[
            "Since D is on the perpendicular bisector of AB, DA = DB.",
            "The perimeter of triangle BCD is BC + CD + DB, and replacing DB by DA gives BC + CD + DA.",
            f"Because D lies on AC, CD + DA = AC = {ac}.",
            f"So the perimeter is {bc} + {ac} = {p}.",
        ],
        checks=[
            f"The answer uses only AC = {ac} and BC = {bc}, and the length of AB never enters.",
            f"{bc} + {ac} = {p}, no arithmetic issue there.",
            "The construction marks at E show AE = EB with a right angle, confirming DE really is the perpendicular bisector.",
        ],
        components=[
            ("Vertex", "A", "the left end of the base AB"),
            ("Vertex", "B", "the right end of the base AB"),
            ("Vertex", "C", "the upper vertex of the triangle"),
            ("Point", "E", "the midpoint of AB, marked with tick marks on both halves"),
            ("Point", "D", "the point where the bisector line meets side AC"),
            ("Segment", "DE", "a line perpendicular to AB through E, with a right-angle marker"),
            ("Segment", "BD", "a line joining B to D"),
        ],
        relations=["DE ⟂ AB at E, and AE = EB.", "D lies on side AC between A and C.",
                   "Segment BD splits the triangle into △ABD and △BCD."],
        inferred=["DA = DB because D is on the perpendicular bisector of AB.",
                  "The perimeter of △BCD equals AC + BC."],
        pitfalls=[("add AC to twice BC", f"{ac + 2 * bc}cm"), ("double AC instead of adding BC", f"{2 * ac}cm")],
        whatif=whatif,
    )


def circle_inscribed_angle(rng: random.Random) -> Problem:
    x = rng.randint(22, 75)
    given_central = rng.random() < 0.6
    start = rng.uniform(-60, 20)
    if given_central:
        stmt = f"As shown in the figure, A, B and C are points on circle O. If ∠AOB = {2 * x}°, what is the measure of ∠ACB?"
        val, goal, givens = x, "the measure of the inscribed angle ∠ACB", [f"∠AOB = {2 * x}°"]
        calc = f"∠ACB = ½∠AOB = ½ × {2 * x}° = {x}°"
        steps = ["∠AOB is the central angle and ∠ACB the inscribed angle standing on the same arc AB.",
                 f"The inscribed angle is half of the central angle, so ∠ACB = {2 * x}° ÷ 2 = {x}°."]
        wr = [f"{2 * x}°", f"{90 - x}°" if x < 80 else f"{x + 10}°", f"{180 - 2 * x}°", f"{x + 10}°"]
        zh = f"如图，点A、B、C在⊙O上，∠AOB={2 * x}°，则∠ACB的度数是（　　）"
    else:
        stmt = f"In circle O, points A, B and C lie on the circle and ∠ACB = {x}°. Find ∠AOB."
        val, goal, givens = 2 * x, "the measure of the central angle ∠AOB", [f"∠ACB = {x}°"]
        calc = f"∠AOB = 2∠ACB = 2 × {x}° = {2 * x}°"
        steps = ["∠ACB is an inscribed angle and ∠AOB is the central angle on the same arc AB.",
                 f"The central angle is twice the inscribed angle, so ∠AOB = 2 × {x}° = {2 * x}°."]
        wr = [f"{x}°", f"{180 - x}°", f"{2 * x + 10}°", f"{180 - 2 * x}°"]
        zh = f"如图，A、B、C是⊙O上的三点，∠ACB={x}°，则∠AOB等于（　　）"

    def whatif(r: random.Random) -> str:
        e = r.randint(1, 30)
        return r.choice([
            f"If the central angle were {2 * x + 2 * e}°, the inscribed angle would be {x + e}°; the factor of two is what matters.",
            f"Sliding C {e * 3}° further along the major arc keeps ∠ACB at {x}°, since inscribed angles on the same arc are equal.",
            f"If C were on the minor arc instead, the inscribed angle would be {180 - x}°, not {x}° or {x + e}°.",
            f"A central angle of {2 * x - e}° would give {fmt(Fraction(2 * x - e, 2))}° for the inscribed angle, so exact reading of the label matters.",
        ])

    return Problem(
        kind="circle_inscribed_angle",
        figure={"x": x, "start": start, "show_central": given_central},
        image_type="Geometric Diagram",
        scene="A circle with center O and three points A, B, C on the circumference; radii OA and OB and chords CA and CB are drawn.",
        statement=stmt, statement_zh=zh, goal=goal, givens=givens,
        value=f"{val}°", plain=str(val),
        distractors=distinct(f"{val}°", wr, rng, lambda: f"{val + rng.randint(5, 25)}°"),
        principle="an inscribed angle is half of the central angle that subtends the same arc",
        principle_zh="同弧所对的圆周角等于它所对的圆心角的一半",
        calc=calc, steps=steps,
        checks=[f"{x}° is exactly half of {2 * x}°, consistent with the inscribed angle theorem.",
                "C is on the major arc in the figure, so no supplementary-angle adjustment is needed.",
                f"Both angles are below 180°, so nothing wraps around."],
        components=[("Circle", "O", "a circle whose center is marked with a dot labeled O"),
                    ("Point", "A", "a point on the circumference"), ("Point", "B", "a second point on the circumference"),
                    ("Point", "C", "a third point on the circumference, on the far side from chord AB"),
                    ("Radii", "OA, OB", "two segments from the center to A and B"),
                    ("Chords", "CA, CB", "two segments from C to A and to B"),
                    ("Angle Label", f"{2 * x}°" if given_central else f"{x}°",
                     "a degree value written inside the marked angle")],
        relations=["∠AOB and ∠ACB both open onto the same arc AB.", "O lies inside the triangle formed by the chords only if the angle is acute."],
        inferred=["The inscribed angle theorem links ∠ACB and ∠AOB.", "OA = OB because both are radii."],
        pitfalls=[("forget to halve the central angle", f"{2 * x}°" if given_central else f"{x}°"),
                  ("treat the angles as supplementary", f"{180 - 2 * x}°")],
        whatif=whatif,
    )


def parallel_lines(rng: random.Random) -> Problem:
    x = rng.randint(35, 75)
    rel = rng.choice(["corresponding", "alternate interior", "same-side interior"])
    val = 180 - x if rel == "same-side interior" else x
    stmt = f"As shown in the figure, line a ∥ line b, and a transversal crosses both lines. If ∠1 = {x}°, what is the measure of ∠2?"
    rule = ("same-side interior angles are supplementary" if rel == "same-side interior"
            else f"{rel} angles formed by parallel lines are equal")
    wr = [f"{180 - val}°", f"{90 - x}°", f"{val + 10}°", f"{2 * x}°"]

    def whatif(r: random.Random) -> str:
        e = r.randint(1, 40)
        return r.choice([
            f"If ∠1 were {x + e}°, ∠2 would be {val + e if val == x else val - e}°, so the relationship tracks ∠1 directly.",
            f"If line b were tilted by {e}°, ∠2 could drift to about {val + e}°; the ∥ symbol is what rules that out.",
            f"A {90 - x}° answer would only come from confusing this with complementary angles; a {val + e}° answer has no justification at all.",
            f"The angle between the transversal and line a is {x}°, and its supplement is {180 - x}°; adding {e}° to either breaks the parallel condition.",
        ])

    return Problem(
        kind="parallel_lines",
        figure={"x": x, "rel": rel},
        image_type="Geometric Diagram",
        scene="Two horizontal parallel lines a and b cut by a slanted transversal, with angles 1 and 2 marked at the two intersections.",
        statement=stmt,
        statement_zh=f"如图，直线a∥b，直线c与a、b相交，若∠1={x}°，则∠2的度数为（　　）",
        goal="the measure of ∠2", givens=[f"a ∥ b", f"∠1 = {x}°"],
        value=f"{val}°", plain=str(val), distractors=distinct(f"{val}°", wr, rng, lambda: f"{val + rng.randint(5, 20)}°"),
        principle=rule, principle_zh="两直线平行，同旁内角互补" if rel == "same-side interior" else "两直线平行，同位角（内错角）相等",
        calc=f"∠2 = 180° − {x}° = {val}°" if rel == "same-side interior" else f"∠2 = ∠1 = {x}°",
        steps=[f"Looking at where the angles sit, ∠1 and ∠2 are {rel} angles.",
               f"Since a ∥ b, {rule}.",
               f"So ∠2 = {'180° − ' + str(x) + '° = ' if rel == 'same-side interior' else ''}{val}°."],
        checks=[f"∠1 is acute in the figure and ∠2 {'is obtuse' if val > 90 else 'is acute as well'}, matching {val}°.",
                f"The transversal makes a {x}° angle with line a, and the same slope repeats at line b."],
        components=[("Line", "a", "the upper horizontal line"), ("Line", "b", "the lower horizontal line, parallel to a"),
                    ("Transversal", "c", "a slanted line crossing both a and b"),
                    ("Angle Mark", "1", "an arc with the label 1 at one intersection"),
                    ("Angle Mark", "2", "an arc with the label 2 at the other intersection")],
        relations=["Lines a and b never meet and are drawn parallel.", f"∠1 and ∠2 are in {rel} position."],
        inferred=[f"Because a ∥ b, {rule}.", "The transversal has the same inclination at both intersections."],
        pitfalls=[("mix up equal and supplementary angle pairs", f"{180 - val}°"),
                  ("use complementary angles", f"{90 - x}°")],
        whatif=whatif,
        context=["A road crosses two parallel railway tracks as shown.", "Two shelves are mounted parallel to each other and a diagonal support crosses both."],
    )
