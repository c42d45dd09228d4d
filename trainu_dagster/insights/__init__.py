"""Insights: which clients are drifting away, why, and how well the score knows it."""
