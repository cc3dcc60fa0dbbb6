"""bhyvesnap: keep bhyve snapshot images usable across bhyve releases.

The public API (documented in the README) is re-exported here; the CLI is a thin layer over
it. Every error the tool raises derives from :class:`BhyvesnapError`, which carries a
:class:`Finding` with a stable rule id.
"""

from migrate.findings import BhyvesnapError, Finding, ImageError, Severity, UsageError

__version__ = "0.1.0"

__all__ = [
    "BhyvesnapError",
    "Finding",
    "ImageError",
    "Severity",
    "UsageError",
    "__version__",
]
