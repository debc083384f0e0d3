"""secreason: build, evaluate and safely serve cybersecurity reasoning models."""

__version__ = "0.1.0"
