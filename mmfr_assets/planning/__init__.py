"""What a run will cost before it starts (`mmfr plan`), and what it did cost afterwards.

- `figures`: the arithmetic, pure: rows needing a request -> requests, samples, tokens, and
  GPU-hours / wall time / money where an endpoint says how fast and how dear it is;
- `counting`: reads what is there (the source, the lake) and asks each model step's own
  declaration (`ModelStep.prepare` / `needs`) which rows need a request;
- `actual`: what the model steps' tables say was spent, per role, and per kept row of each recipe;
- `render`: the table `mmfr plan` prints and its `--json` object.
"""
