"""``python -m migrate`` behaves exactly as ``bhyvesnap``."""

from migrate.cli import entry_point

entry_point()
