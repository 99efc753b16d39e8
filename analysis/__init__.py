"""Analyses of model activations for subspace-lens."""
