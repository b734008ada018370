"""Slow-Fast Policy Optimization (SFPO, arXiv 2510.04072) as a plugin for verl 0.9.1."""

__version__ = "0.1.0"
