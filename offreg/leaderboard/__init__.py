"""Leaderboard: run matrices of agents x datasets x seeds, aggregation and reports."""
