"""What results mean: Pareto fronts, hypervolume, knee points, plots and reports."""
