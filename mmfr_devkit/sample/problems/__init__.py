"""Problem bank: parameterised visual problems (geometry, measurement, charts, physics).

``make_problem(subset, rng)`` draws a problem of a family that fits the
subset's real topic mix; each family lives in its own module.
"""

from __future__ import annotations

import random
from typing import Callable

from .base import LETTERS, Problem, fmt
from .charts import bar_chart, pie_chart
from .geometry import circle_inscribed_angle, parallel_lines, perpendicular_bisector, right_triangle, triangle_angles
from .measurement import cuboid, linear_function, sector_area
from .physics import circuit, incline

GENERATORS: dict[str, Callable[[random.Random], Problem]] = {
    "triangle_angles": triangle_angles, "right_triangle": right_triangle,
    "perpendicular_bisector": perpendicular_bisector, "circle_inscribed_angle": circle_inscribed_angle,
    "parallel_lines": parallel_lines, "sector_area": sector_area, "cuboid": cuboid,
    "linear_function": linear_function, "bar_chart": bar_chart, "pie_chart": pie_chart,
    "circuit": circuit, "incline": incline,
}

# Which problem families each subset draws from (mirrors the real subsets' topics).
SUBSET_KINDS: dict[str, tuple[str, ...]] = {
    "BMMR": ("circuit", "incline", "bar_chart", "pie_chart", "triangle_angles", "linear_function", "sector_area"),
    "FineVision-geo170k(qa)": ("triangle_angles", "right_triangle", "perpendicular_bisector",
                               "circle_inscribed_angle", "parallel_lines", "sector_area"),
    "LLaVA-CoT": ("bar_chart", "pie_chart", "linear_function", "circuit", "bar_chart"),
    "WeMath2-Pro": ("cuboid", "sector_area", "right_triangle", "triangle_angles", "linear_function", "parallel_lines"),
}
DEFAULT_KINDS = tuple(GENERATORS)


def make_problem(subset: str, rng: random.Random) -> Problem:
    """Draw a random problem of a family that fits ``subset``."""
    return GENERATORS[rng.choice(SUBSET_KINDS.get(subset, DEFAULT_KINDS))](rng)


__all__ = ["DEFAULT_KINDS", "GENERATORS", "LETTERS", "SUBSET_KINDS", "Problem", "fmt", "make_problem"]
