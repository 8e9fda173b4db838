"""The row viewer: static HTML pages per subset and stage, showing each row as a person judges
it (image, question, answer, trace, caption, verdicts) and why a dropped row was dropped."""
