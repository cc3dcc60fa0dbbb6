"""The sha256 lock of shipped JSON Schemas (schemas/lock.json).

A schema that has shipped is never edited: images and profiles in the field were validated
against it. A change goes into a new file (a new revision), which is added to the lock with
``python tests/schema_lock.py --add``; that command refuses to re-hash a locked file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
LOCK = SCHEMAS / "lock.json"


def schema_files() -> list[Path]:
    return sorted(SCHEMAS.rglob("*.schema.json"))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_lock() -> dict[str, str]:
    lock: dict[str, str] = json.loads(LOCK.read_text(encoding="utf-8"))
    return lock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--add", action="store_true", help="lock schema files not yet locked")
    args = parser.parse_args()
    lock = load_lock() if LOCK.exists() else {}
    for path in schema_files():
        name = path.relative_to(SCHEMAS).as_posix()
        if name in lock:
            if lock[name] != digest(path):
                print(f"{name}: changed after it was locked; add a new revision instead")
                return 1
        elif args.add:
            lock[name] = digest(path)
            print(f"locked {name}")
    LOCK.write_text(json.dumps(dict(sorted(lock.items())), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
