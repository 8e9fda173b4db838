"""The `report` asset: the funnel over all partitions, plots the UI shows, and the row viewer."""
