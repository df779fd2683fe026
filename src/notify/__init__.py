"""notify: a self-hosted notification backend."""

__version__ = "0.1.0"
