"""The package version: its one home (the wheel's metadata reads it from here)."""

__version__ = "0.1.0"
