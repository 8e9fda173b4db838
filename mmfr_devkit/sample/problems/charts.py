"""Statistics problems read off charts: bar charts and pie charts."""

from __future__ import annotations

import random

from .base import Problem, distinct, fmt


_BAR_THEMES = [
    ("Books sold at the school fair", "Number of books", ["Mon", "Tue", "Wed", "Thu", "Fri"], (12, 95)),
    ("Monthly rainfall", "Rainfall (mm)", ["Jan", "Feb", "Mar", "Apr", "May", "Jun"], (20, 180)),
    ("Revenue by region, 2022", "Revenue (million USD)", ["North", "South", "East", "West", "Central"], (40, 400)),
    ("Favourite sport of Grade 8 students", "Students", ["Football", "Basketball", "Tennis", "Swimming"], (8, 60)),
    ("Electricity use by appliance", "kWh per month", ["Heater", "Fridge", "Washer", "Oven", "TV"], (15, 220)),
    ("Museum visitors by year", "Visitors (thousands)", ["2018", "2019", "2020", "2021", "2022"], (30, 250)),
]


def bar_chart(rng: random.Random) -> Problem:
    title, ylabel, cats, (lo, hi) = rng.choice(_BAR_THEMES)
    cats = cats[: rng.randint(4, len(cats))]
    vals = rng.sample(range(lo, hi + 1), len(cats))
    mode = rng.choice(["max", "diff", "total"])
    i, j = rng.sample(range(len(cats)), 2)
    top = cats[vals.index(max(vals))]
    if mode == "max":
        val = top
        stmt = f"According to the bar chart \"{title}\", which category has the largest value?"
        goal, calc = "the category with the tallest bar", f"max({', '.join(map(str, vals))}) = {max(vals)} → {top}"
        steps = [f"The tallest bar is {top} at {max(vals)}.",
                 f"The runner-up is {cats[vals.index(sorted(vals)[-2])]} at {sorted(vals)[-2]}, which is clearly lower."]
        wr = [c for c in cats if c != top]
        principle = "the category with the largest value is the one with the tallest bar"
    elif mode == "diff":
        d = abs(vals[i] - vals[j])
        val = str(d)
        stmt = f"In the bar chart \"{title}\", what is the difference between {cats[i]} and {cats[j]}?"
        goal, calc = f"the difference between {cats[i]} and {cats[j]}", f"|{vals[i]} − {vals[j]}| = {d}"
        steps = [f"{cats[i]} is {vals[i]} and {cats[j]} is {vals[j]}.", f"The difference is |{vals[i]} − {vals[j]}| = {d}."]
        wr = [str(vals[i] + vals[j]), str(d + 10), str(abs(d - 5)), str(max(vals) - min(vals))]
        principle = "the difference between two bars is the larger value minus the smaller one"
    else:
        s = sum(vals)
        val = str(s)
        stmt = f"What is the total of all categories shown in the bar chart \"{title}\"?"
        goal, calc = "the total over all bars", " + ".join(map(str, vals)) + f" = {s}"
        steps = [f"Reading every bar: {', '.join(f'{c} {v}' for c, v in zip(cats, vals))}.",
                 f"Adding them up gives {s}."]
        wr = [str(s + 10), str(s - vals[0]), str(max(vals) * len(vals)), str(s + vals[-1])]
        principle = "a total is simply the sum of all the bar values"

    def whatif(r: random.Random) -> str:
        k = r.randrange(len(cats))
        e = r.randint(1, 30)
        return r.choice([
            f"I'll re-read {cats[k]}: the label on top of that bar says {vals[k]}, not {vals[k] + e}.",
            f"If I had misread {cats[k]} as {vals[k] + e}, the result would shift by {e}, so precision matters here.",
            f"{cats[k]} at {vals[k]} is {abs(vals[k] - vals[(k + 1) % len(vals)])} away from {cats[(k + 1) % len(cats)]}, which is consistent with the bar heights.",
            f"Estimating from gridlines alone, {cats[k]} could look like {vals[k] - e}, but the printed value {vals[k]} is exact.",
        ])

    return Problem(
        kind="bar_chart",
        figure={"title": title, "ylabel": ylabel, "cats": cats, "vals": vals},
        image_type="Mathematical Plot / Chart",
        scene=f"A vertical bar chart titled \"{title}\" with {len(cats)} bars, each labeled with its value.",
        statement=stmt,
        statement_zh=f"根据条形统计图“{title}”回答问题：{stmt}",
        goal=goal, givens=[f"{c} = {v}" for c, v in zip(cats, vals)],
        value=val, plain=val, distractors=distinct(val, wr, rng, lambda: str(rng.randint(lo, hi))),
        principle=principle, principle_zh="从统计图中读取各项数据再进行计算",
        calc=calc, steps=steps,
        checks=[f"Each bar has its number printed on top, so there's no need to estimate from the gridlines.",
                f"The values {', '.join(map(str, vals))} all fall within the axis range."],
        components=[("Title", title, "centered text above the plot area"),
                    ("Y-axis Label", ylabel, "rotated text along the vertical axis"),
                    *[("Bar", c, f"a filled bar with value {v} written on top") for c, v in zip(cats, vals)]],
        relations=["Bars share a common baseline at zero.", "Bar heights are proportional to the printed values."],
        inferred=[f"The largest value belongs to {top}.", f"The smallest value belongs to {cats[vals.index(min(vals))]}."],
        pitfalls=[("read the wrong bar", wr[0]), ("add the values instead of subtracting", wr[1] if len(wr) > 1 else wr[0])],
        whatif=whatif,
    )


_PIE_THEMES = [
    ("Monthly household budget", ["Housing", "Food", "Transport", "Savings", "Other"], "dollars", 2000),
    ("Fruit trees planted in the village", ["Peach", "Apricot", "Jujube", "Plum"], "trees", 400),
    ("City energy sources", ["Coal", "Gas", "Solar", "Wind", "Hydro"], "GWh", 1200),
    ("How students travel to school", ["Walk", "Bus", "Bike", "Car"], "students", 600),
]


def pie_chart(rng: random.Random) -> Problem:
    title, cats, unit, base = rng.choice(_PIE_THEMES)
    n = len(cats)
    while True:
        cuts = sorted(rng.sample(range(1, 20), n - 1))
        parts = [b - a for a, b in zip([0, *cuts], [*cuts, 20])]
        if min(parts) >= 1 and len(set(parts)) >= n - 1:
            break
    pcts = [5 * p for p in parts]
    total = base * rng.choice([1, 2, 3])
    k = rng.randrange(n)
    mode = rng.choice(["amount", "angle"])
    if mode == "amount":
        v = pcts[k] * total // 100
        val = str(v)
        stmt = f"The pie chart shows \"{title}\" for a total of {total} {unit}. How many {unit} correspond to {cats[k]}?"
        goal, calc = f"the amount for {cats[k]}", f"{pcts[k]}% × {total} = {v}"
        steps = [f"The {cats[k]} slice is labeled {pcts[k]}%.", f"{pcts[k]}% of {total} is {pcts[k]}/100 × {total} = {v}."]
        wr = [str(pcts[k]), str(v + total // 20), str((100 - pcts[k]) * total // 100), str(v * 2)]
        principle = "the amount for a slice is its percentage times the total"
    else:
        v = pcts[k] * 18 // 5
        val = f"{v}°"
        stmt = f"In the pie chart \"{title}\", what is the central angle of the {cats[k]} sector?"
        goal, calc = f"the central angle of the {cats[k]} sector", f"{pcts[k]}% × 360° = {v}°"
        steps = [f"{cats[k]} accounts for {pcts[k]}% of the whole.", f"A full circle is 360°, so the angle is {pcts[k]}/100 × 360° = {v}°."]
        wr = [f"{pcts[k]}°", f"{v + 18}°", f"{360 - v}°", f"{v * 2}°"]
        principle = "each sector's central angle is its percentage of 360°"

    def whatif(r: random.Random) -> str:
        q = r.randrange(n)
        e = r.randint(1, 30)
        return r.choice([
            f"Checking another slice for scale: {cats[q]} is {pcts[q]}%, which is {pcts[q] * total // 100} {unit} out of {total}.",
            f"If {cats[q]} were {pcts[q] + e}% instead, it would stand for {fmt((pcts[q] + e) * total / 100)} {unit}.",
            f"{cats[q]} at {pcts[q]}% corresponds to a {pcts[q] * 18 // 5}° wedge, while {pcts[q] + e}% would need {fmt((pcts[q] + e) * 3.6)}°.",
            f"For a total of {total + 10 * e} {unit}, the {cats[q]} share would be {fmt(pcts[q] * (total + 10 * e) / 100)} {unit}, so the stated total matters.",
        ])

    return Problem(
        kind="pie_chart",
        figure={"title": title, "cats": cats, "pcts": pcts},
        image_type="Mathematical Plot / Chart",
        scene=f"A pie chart titled \"{title}\" divided into {n} labeled sectors with percentages.",
        statement=stmt, statement_zh=f"如图是“{title}”的扇形统计图，{'总量为' + str(total) + '，' if mode == 'amount' else ''}求“{cats[k]}”{'对应的数量' if mode == 'amount' else '所对应扇形的圆心角'}。",
        goal=goal, givens=[f"{c}: {p}%" for c, p in zip(cats, pcts)] + ([f"total = {total} {unit}"] if mode == "amount" else []),
        value=val, plain=val.rstrip("°") if mode == "amount" else val,
        distractors=distinct(val, wr, rng, lambda: str(rng.randint(10, 300))),
        principle=principle, principle_zh="扇形统计图中各部分的数量 = 总量 × 百分比，圆心角 = 360° × 百分比",
        calc=calc, steps=steps,
        checks=[f"The slices sum to 100%, so the chart is complete.", f"{cats[k]} is {'one of the larger slices' if pcts[k] >= 25 else 'a smaller slice'}, and the answer is proportionate."],
        components=[("Title", title, "text above the pie"),
                    *[("Sector", c, f"a colored wedge labeled {p}%") for c, p in zip(cats, pcts)]],
        relations=["All sectors meet at the center of the circle.", "Sector sizes are proportional to their percentages."],
        inferred=["The percentages sum to 100%.", f"The largest sector is {cats[pcts.index(max(pcts))]}."],
        pitfalls=[("report the percentage itself instead of the amount", wr[0]), ("use the complement of the slice", wr[2])],
        whatif=whatif,
    )
