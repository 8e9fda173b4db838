"""Physics problems: DC circuits and blocks on inclines."""

from __future__ import annotations

import random
from fractions import Fraction

from .base import Problem, distinct, fmt


def circuit(rng: random.Random) -> Problem:
    series = rng.random() < 0.5
    if series:
        r1, r2 = rng.randint(2, 12), rng.randint(2, 12)
        req = Fraction(r1 + r2)
        volt = rng.choice([6, 9, 12, 18, 24])
    else:
        r1, r2 = rng.choice([(3, 6), (4, 12), (6, 12), (10, 15), (6, 6), (12, 24), (20, 30), (4, 4), (8, 8), (6, 3)])
        req = Fraction(r1 * r2, r1 + r2)
        volt = rng.choice([6, 12, 24])
    cur = Fraction(volt) / req
    val = f"{fmt(cur)} A"
    conn = "series" if series else "parallel"
    stmt = (f"In the circuit shown, a {volt} V battery is connected to resistors R1 = {r1} Ω and R2 = {r2} Ω in {conn}. "
            f"Ignoring the internal resistance of the battery, what current does the battery supply?")
    wr = [f"{fmt(Fraction(volt, r1 + r2) if not series else Fraction(volt * (r1 + r2), r1 * r2))} A",
          f"{fmt(Fraction(volt, r1))} A", f"{fmt(cur * 2)} A", f"{fmt(Fraction(volt, r2))} A"]

    def whatif(r: random.Random) -> str:
        v2 = r.randint(1, 40)
        return r.choice([
            f"With a {v2} V battery instead, the current would be {fmt(Fraction(v2) / req)} A, so it scales linearly with voltage.",
            f"Power check: a {v2} V source driving {fmt(req)} Ω would dissipate {fmt(Fraction(v2 * v2) / req)} W, and here it is {fmt(volt * cur)} W.",
            f"If R1 were {r1 + v2} Ω, the equivalent resistance would change to "
            f"{fmt(Fraction(r1 + v2 + r2) if series else Fraction((r1 + v2) * r2, r1 + v2 + r2))} Ω.",
            f"A current of {fmt(cur)} A through {fmt(req)} Ω drops {volt} V, while {v2} A would need {fmt(v2 * req)} V.",
        ])

    return Problem(
        kind="circuit",
        figure={"series": series, "r1": r1, "r2": r2, "volt": volt},
        image_type="Circuit / Network Diagram",
        scene=f"A simple DC circuit with a battery and two resistors R1 and R2 connected in {conn}.",
        statement=stmt,
        statement_zh=f"如图所示电路中，电源电压为{volt}V，电阻R1={r1}Ω、R2={r2}Ω{'串联' if series else '并联'}，不计电源内阻，则电路中的总电流为（　　）",
        goal="the current supplied by the battery", givens=[f"V = {volt} V", f"R1 = {r1} Ω", f"R2 = {r2} Ω", f"{conn} connection"],
        value=val, plain=fmt(cur), distractors=distinct(val, wr, rng, lambda: f"{rng.randint(1, 9)} A"),
        principle=("in series the resistances add, and Ohm's law I = V/R gives the current" if series else
                   "for two resistors in parallel the equivalent resistance is R1·R2/(R1 + R2), and then I = V/R"),
        principle_zh="串联电路总电阻等于各电阻之和，欧姆定律 I = U/R" if series else "并联电路 1/R = 1/R1 + 1/R2，欧姆定律 I = U/R",
        calc=f"R = {fmt(req)} Ω, I = {volt}/{fmt(req)} = {fmt(cur)} A",
        steps=([f"In series, R = R1 + R2 = {r1} + {r2} = {r1 + r2} Ω."] if series else
               [f"In parallel, R = R1·R2/(R1 + R2) = {r1 * r2}/{r1 + r2} = {fmt(req)} Ω."]) +
              [f"Ohm's law then gives I = V/R = {volt}/{fmt(req)} = {fmt(cur)} A."],
        checks=[f"{'The equivalent resistance is larger than either resistor, as it should be in series.' if series else 'The equivalent resistance is smaller than either resistor, as it should be in parallel.'}",
                f"Units: volts divided by ohms gives amperes."],
        components=[("Battery", f"{volt} V", "a pair of long and short parallel plates on the left side of the loop"),
                    ("Resistor", f"R1 = {r1} ohm", "a zigzag element with its label"),
                    ("Resistor", f"R2 = {r2} ohm", "a second zigzag element with its label"),
                    ("Wires", "None", "straight connecting lines forming closed loops")],
        relations=[f"R1 and R2 are connected in {conn}.", "The battery drives current around the loop."],
        inferred=[f"The equivalent resistance is {fmt(req)} Ω.", "The same voltage appears across both branches." if not series else "The same current flows through both resistors."],
        pitfalls=[("use only one of the resistors", f"{fmt(Fraction(volt, r1))} A"), (f"treat the resistors as {'parallel' if series else 'series'}", wr[0])],
        whatif=whatif,
    )


_SIN = {30: Fraction(1, 2), 37: Fraction(3, 5), 53: Fraction(4, 5)}
_COS = {37: Fraction(4, 5), 53: Fraction(3, 5)}


def incline(rng: random.Random) -> Problem:
    th = rng.choice([30, 37, 53])
    m = rng.choice([1, 2, 3, 4, 5, 10])
    mode = rng.choice(["accel", "parallel", "normal"] if th != 30 else ["accel", "parallel"])
    g = 10
    if mode == "accel":
        v = g * _SIN[th]
        val, goal = f"{fmt(v)} m/s²", "the acceleration of the block down the incline"
        stmt = f"A block of mass {m} kg slides down a frictionless incline of angle {th}° as shown. Taking g = 10 m/s², what is its acceleration?"
        steps = ["Along the incline the only force component is mg·sinθ.", f"So a = g·sinθ = 10 × {fmt(_SIN[th])} = {fmt(v)} m/s², independent of the mass."]
        calc = f"a = g sin{th}° = 10 × {fmt(_SIN[th])} = {fmt(v)} m/s²"
        wr = [f"{fmt(g * _COS.get(th, Fraction(87, 100)))} m/s²", "10 m/s²", f"{fmt(v * m)} m/s²", f"{fmt(v / 2)} m/s²"]
    elif mode == "parallel":
        v = m * g * _SIN[th]
        val, goal = f"{fmt(v)} N", "the component of gravity along the incline"
        stmt = f"A {m} kg block rests on an incline of angle {th}° as shown. Taking g = 10 m/s², what is the component of its weight parallel to the incline?"
        steps = [f"The weight is mg = {m} × 10 = {m * g} N.", f"Its component along the slope is mg·sinθ = {m * g} × {fmt(_SIN[th])} = {fmt(v)} N."]
        calc = f"F∥ = mg sin{th}° = {m * g} × {fmt(_SIN[th])} = {fmt(v)} N"
        wr = [f"{fmt(m * g * _COS.get(th, Fraction(87, 100)))} N", f"{m * g} N", f"{fmt(v / 2)} N", f"{fmt(v + m)} N"]
    else:
        v = m * g * _COS[th]
        val, goal = f"{fmt(v)} N", "the normal force on the block"
        stmt = f"A {m} kg block rests on an incline of angle {th}° as shown. Taking g = 10 m/s², what is the normal force exerted by the incline on the block?"
        steps = [f"Perpendicular to the slope, N balances mg·cosθ.", f"So N = {m * g} × {fmt(_COS[th])} = {fmt(v)} N."]
        calc = f"N = mg cos{th}° = {m * g} × {fmt(_COS[th])} = {fmt(v)} N"
        wr = [f"{fmt(m * g * _SIN[th])} N", f"{m * g} N", f"{fmt(v + 5)} N", f"{fmt(v / 2)} N"]

    def whatif(r: random.Random) -> str:
        t2 = r.choice([t for t in (30, 37, 53) if t != th])
        m2 = r.randint(1, 40)
        return r.choice([
            f"At {t2}° instead, sinθ would be {fmt(_SIN[t2])} and a {m2} kg block would feel {fmt(m2 * g * _SIN[t2])} N along the slope.",
            f"Limiting cases: at 0° the block wouldn't slide at all, and at 90° a {m2} kg block would simply fall with weight {m2 * g} N; {th}° sits in between.",
            f"A {m2} kg block on this same {th}° slope would feel {fmt(m2 * g * _SIN[th])} N along it but still accelerate at {fmt(g * _SIN[th])} m/s².",
            f"With g = 9.8 instead of 10, the along-slope pull on {m2} kg would be {fmt(m2 * 9.8 * float(_SIN[th]))} N, slightly less.",
        ])

    return Problem(
        kind="incline",
        figure={"theta": th, "m": m},
        image_type="Physics Diagram",
        scene=f"A block of mass {m} kg on an inclined plane of angle {th}°, with its weight drawn as a downward arrow.",
        statement=stmt,
        statement_zh=f"如图所示，质量为{m}kg的物块位于倾角为{th}°的斜面上，g取10m/s²，求{'物块下滑的加速度（斜面光滑）' if mode == 'accel' else '重力沿斜面方向的分力' if mode == 'parallel' else '斜面对物块的支持力'}。",
        goal=goal, givens=[f"m = {m} kg", f"θ = {th}°", "g = 10 m/s²"] + (["frictionless surface"] if mode == "accel" else []),
        value=val, plain=fmt(v), distractors=distinct(val, wr, rng, lambda: f"{rng.randint(1, 40)} N"),
        principle="the weight splits into mg·sinθ along the incline and mg·cosθ perpendicular to it",
        principle_zh="将重力沿斜面和垂直斜面方向分解：mg·sinθ 与 mg·cosθ",
        calc=calc, steps=steps,
        checks=[f"sin{th}° = {fmt(_SIN[th])} is the usual textbook value.",
                "The component along the slope is smaller than the full weight, as it must be."],
        components=[("Incline", "None", "a right-triangular wedge drawn with its hypotenuse as the slope"),
                    ("Angle Label", f"{th}°", "a degree value written inside the corner at the foot of the slope"),
                    ("Block", f"{m} kg", "a square resting on the slope with its mass written on it"),
                    ("Weight Arrow", "mg", "a downward arrow from the center of the block"),
                    ("Normal Arrow", "N", "an arrow perpendicular to the slope")],
        relations=["The block's bottom face lies flush on the slope.", "The weight arrow points straight down, not perpendicular to the slope."],
        inferred=["The weight can be resolved into components along and perpendicular to the slope.", "No friction arrow is drawn."],
        pitfalls=[("swap sine and cosine", wr[0]), ("use the full weight", wr[1])],
        whatif=whatif,
    )
