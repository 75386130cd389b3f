"""frugal: provenance analytics that turns ML Metadata into compute savings."""

__version__ = "0.1.0"
