"""Experiment design for formulation campaigns: search spaces with exact mixture
constraints, objectives and outcome constraints, and strategies (space-filling designs,
classical DoE, Gaussian-process Bayesian optimisation, evolutionary search) behind one
ask/tell interface. No ROS imports; the optimiser node adapts it.
"""
