"""Robust accuracy per model x dataset x attack, named suites, and the reports and plots."""
