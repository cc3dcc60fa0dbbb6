"""bhyvesnap: keep bhyve snapshot images usable across bhyve releases.

The public API (documented in the README) is re-exported here and loaded lazily (PEP 562),
so ``import migrate`` stays cheap and each CLI command imports only what it needs. Every
error the tool raises derives from :class:`BhyvesnapError`, which carries a :class:`Finding`
with a stable rule id; every result is an immutable dataclass whose ``to_json()`` is the
command's JSON output.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # errors and findings
    "BhyvesnapError": "migrate.findings",
    "ImageError": "migrate.findings",
    "NotInterpretedError": "migrate.findings",
    "UsageError": "migrate.findings",
    "Finding": "migrate.findings",
    "Severity": "migrate.findings",
    "Verdict": "migrate.verdicts",
    # reading and validating
    "Image": "migrate.image",
    "read_image": "migrate.formats",
    "validate": "migrate.validation",
    "ValidationReport": "migrate.validation",
    "describe": "migrate.show",
    # targets and the checker
    "Target": "migrate.targets",
    "load_targets": "migrate.targets",
    "resolve_target": "migrate.targets",
    "check": "migrate.checker",
    "check_path": "migrate.checker",
    "CheckResult": "migrate.checker",
    # migration
    "REGISTRY": "migrate.registry",
    "Plan": "migrate.registry",
    "plan_migration": "migrate.migration",
    "run_migration": "migrate.migration",
    "MigrationResult": "migrate.migration",
    # gate
    "run_gate": "migrate.gate",
    "GateResult": "migrate.gate",
}

__all__ = [
    "REGISTRY", "BhyvesnapError", "CheckResult", "Finding", "GateResult", "Image", "ImageError",
    "MigrationResult", "NotInterpretedError", "Plan", "Severity", "Target", "UsageError",
    "ValidationReport", "Verdict", "__version__", "check", "check_path", "describe",
    "load_targets", "plan_migration", "read_image", "resolve_target", "run_gate",
    "run_migration", "validate",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'migrate' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from migrate.checker import CheckResult, check, check_path
    from migrate.findings import (
        BhyvesnapError,
        Finding,
        ImageError,
        NotInterpretedError,
        Severity,
        UsageError,
    )
    from migrate.formats import read_image
    from migrate.gate import GateResult, run_gate
    from migrate.image import Image
    from migrate.migration import MigrationResult, plan_migration, run_migration
    from migrate.registry import REGISTRY, Plan
    from migrate.show import describe
    from migrate.targets import Target, load_targets, resolve_target
    from migrate.validation import ValidationReport, validate
    from migrate.verdicts import Verdict
