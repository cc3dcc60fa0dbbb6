"""The catalogue of stable rule ids.

A rule id, once released, keeps its meaning forever (scripts and CI filters match on it); a
new check gets a new id. The README's rule table is checked against this catalogue by a test,
so the two cannot drift. Prefixes: N nvlist codec, L legacy three-file images, S single-file
images, C the ``config`` section, P producer (IDENT), T target rules, M migration, G gate,
X usage and tool errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class RuleKind(str, Enum):
    """What an ``error`` of the rule does to a verdict (CLI.md, "Findings")."""

    VALIDATION = "validation"  # image damaged or malformed: verdict invalid
    PRODUCER = "producer"  # image not interpreted (foreign, unknown version): incompatible
    TARGET = "target"  # a target cannot restore it: incompatible
    MIGRATION = "migration"  # a migration was refused or failed
    GATE = "gate"  # a gate pair failed
    USAGE = "usage"  # the command line or an input path is wrong
    TOOL = "tool"  # the tool itself failed


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    kind: RuleKind
    summary: str


def _catalogue(*rules: Rule) -> dict[str, Rule]:
    table: dict[str, Rule] = {}
    for rule in rules:
        if rule.id in table:
            raise ValueError(f"duplicate rule id {rule.id}")
        table[rule.id] = rule
    return table


V, P, T, M, G, U, X = (RuleKind.VALIDATION, RuleKind.PRODUCER, RuleKind.TARGET,
                       RuleKind.MIGRATION, RuleKind.GATE, RuleKind.USAGE, RuleKind.TOOL)

RULES: dict[str, Rule] = _catalogue(
    # --- nvlist codec (NVLIST.md section 7, plus this tool's limits) ---
    Rule("BHS-N001", "nvlist-truncated", V, "a header or pair runs past the end of the buffer"),
    Rule("BHS-N002", "nvlist-bad-magic", V, "an nvlist header does not start with 0x6c"),
    Rule("BHS-N003", "nvlist-bad-flags", V, "an nvlist header has flag bits other than 0x01, 0x02, 0x80"),
    Rule("BHS-N004", "nvlist-bad-size", V, "nvlh_size is not the number of bytes left after the header"),
    Rule("BHS-N005", "nvlist-descriptors", V, "the list announces or holds file descriptors, which only nvlist_send() carries"),
    Rule("BHS-N006", "nvlist-flags-mismatch", V, "the top header's flags differ from the flags the caller expects (EILSEQ)"),
    Rule("BHS-N007", "nvlist-bad-type", V, "a pair has a type code outside 1-12, 254, 255"),
    Rule("BHS-N008", "nvlist-bad-name", V, "a pair name is empty-sized, too long, unterminated or holds a NUL"),
    Rule("BHS-N009", "nvlist-bad-datasize", V, "a pair's datasize exceeds the bytes left or does not fit its type"),
    Rule("BHS-N010", "nvlist-bad-value", V, "a pair's payload is not a valid value of its type"),
    Rule("BHS-N011", "nvlist-duplicate-name", V, "a name repeats in a list without NV_FLAG_NO_UNIQUE"),
    Rule("BHS-N012", "nvlist-stray-marker", V, "an NVLIST_UP or NVLIST_ARRAY_NEXT marker has no list to close"),
    Rule("BHS-N013", "nvlist-too-deep", V, "nesting deeper than 256 levels (a limit of this tool, not of libnv)"),
    Rule("BHS-N014", "nvlist-too-many-items", V, "an array of more than 1,000,000 items (a limit of this tool)"),
    Rule("BHS-N015", "nvlist-too-large", V, "a header nvlist larger than 64 MiB (a limit of this tool)"),
    # --- legacy three-file images (FORMAT.md section 2) ---
    Rule("BHS-L001", "legacy-file-missing", V, "F, F.kern or F.meta is missing or empty"),
    Rule("BHS-L002", "meta-not-json", V, "F.meta is not a JSON object"),
    Rule("BHS-L003", "meta-schema", V, "F.meta does not match the schema of its layout"),
    Rule("BHS-L004", "meta-too-large", V, "F.meta is larger than 64 MiB (a limit of this tool)"),
    Rule("BHS-L005", "meta-unknown-layout", V, "F.meta has neither `structs` nor `kern_structs`, or both"),
    Rule("BHS-L006", "memory-size-mismatch", V, "the memory file size differs from basic metadata.memsize"),
    Rule("BHS-L007", "blob-out-of-bounds", V, "a state blob lies outside F.kern"),
    Rule("BHS-L008", "blob-overlap", V, "two state blobs in F.kern overlap"),
    Rule("BHS-L009", "kern-gap", V, "F.kern has a gap or trailing bytes between blobs (a warning only)"),
    Rule("BHS-L010", "duplicate-entry", V, "a kernel structure or device name repeats in F.meta"),
    Rule("BHS-L011", "generation-unknown", V, "no ABI generation fingerprint matches the image"),
    # --- single-file images (FORMAT.md section 3) ---
    Rule("BHS-S001", "file-truncated", V, "the file is shorter than its fixed prefix or header"),
    Rule("BHS-S002", "ident-malformed", V, "IDENT is not printable ASCII, NUL padded, `<producer> <version>`"),
    Rule("BHS-S003", "header-size-out-of-bounds", V, "NVLIST SIZE runs past the file or the header area"),
    Rule("BHS-S004", "header-schema", V, "the header nvlist does not match its revision's schema"),
    Rule("BHS-S005", "r1-header-too-large", V, "an r1 header does not fit its 4096-byte header area"),
    Rule("BHS-S006", "section-in-header", V, "a section starts inside the header area"),
    Rule("BHS-S007", "section-past-eof", V, "a section ends past the end of the file"),
    Rule("BHS-S008", "section-overlap", V, "two sections overlap"),
    Rule("BHS-S009", "section-missing", V, "a mainstream section (config, kernel, devices, memory) is missing"),
    Rule("BHS-S010", "section-type", V, "a mainstream section has the wrong type"),
    Rule("BHS-S011", "header-padding", V, "the header area's padding is not zero (a warning only)"),
    Rule("BHS-S012", "state-entry", V, "a kernel or devices entry is not of the form its revision requires"),
    Rule("BHS-S013", "memory-section-size", V, "the memory section's size differs from config memory.size"),
    Rule("BHS-S014", "checksum-mismatch", V, "a section's bytes do not match its recorded checksum (--verify)"),
    Rule("BHS-S015", "checksum-unverifiable", V, "a checksum uses an unknown algorithm: cannot verify (a warning)"),
    Rule("BHS-S016", "compat-record", V, "the r2 compat record is malformed (min_reader, features)"),
    Rule("BHS-S017", "diff-pages", V, "a diff-pages memory section is malformed"),
    Rule("BHS-S018", "unknown-section", V, "a section this tool does not know is carried over unread (info)"),
    Rule("BHS-S019", "section-too-large", V, "a config section over 16 MiB or a kernel/devices section over 64 MiB (a limit of this tool)"),
    # --- the config section (FORMAT.md section 3.7) ---
    Rule("BHS-C001", "config-syntax", V, "a config line is not `key=value`, its key cannot be stored by bhyve, or the text is not UTF-8"),
    Rule("BHS-C002", "config-missing-key", V, "the config lacks name, cpus or memory.size"),
    Rule("BHS-C003", "config-bad-value", V, "a config value (cpus, memory.size, memory flags, a PCI address, name) does not parse or cannot be expressed"),
    Rule("BHS-C004", "config-conflict", U, "a user config disagrees with the image on name, cpus or memory.size, or its keys clash with the image's"),
    Rule("BHS-C005", "config-incomplete", V, "the config was built from legacy metadata alone (a warning)"),
    # --- producer (IDENT, FORMAT.md sections 1 and 3.1) ---
    Rule("BHS-P001", "foreign-producer", P, "the image was written by another producer; its contents were not interpreted"),
    Rule("BHS-P002", "unknown-version", P, "a mainstream IDENT version this tool does not know; contents not interpreted"),
    # --- target rules (FORMAT.md sections 4-6) ---
    Rule("BHS-T001", "generation-mismatch", T, "a state entry's ABI generation differs and no blob transform leads to the target's"),
    Rule("BHS-T002", "device-unsupported", T, "a device emulation the target cannot snapshot or restore"),
    Rule("BHS-T003", "kernel-structure-missing", T, "a kernel structure the target requires is absent"),
    Rule("BHS-T004", "zero-size-structure", T, "a kernel structure of size 0, which the target rejects"),
    Rule("BHS-T005", "blob-too-large", T, "a state blob larger than the target's save buffer"),
    Rule("BHS-T006", "feature-unknown", T, "the image uses a compat feature the target does not know"),
    Rule("BHS-T007", "min-reader-too-new", T, "the image's min_reader is newer than the target"),
    Rule("BHS-T008", "base-missing", T, "a diff-pages image whose base image is not at hand"),
    Rule("BHS-T009", "config-drift", T, "the restore config's devices differ from the image's"),
    Rule("BHS-T010", "no-migration-path", T, "no chain of migration steps leads to the target's format"),
    Rule("BHS-T011", "known-defect", T, "the target is recorded as unable to restore such images (info)"),
    Rule("BHS-T012", "migration-needed", T, "the image must be migrated before this target restores it (info)"),
    Rule("BHS-T013", "device-entry-missing", T, "a PCI device of the image's config has no state entry (fatal where the target requires one, 14.0+)"),
    # --- migration (FORMAT.md section 6, issue 4) ---
    Rule("BHS-M001", "lossy-refused", M, "the plan drops data and --allow-lossy was not given"),
    Rule("BHS-M002", "step-blocked", M, "a step needs a blob transform that is not registered"),
    Rule("BHS-M003", "config-required", M, "the step needs --config (legacy-a slot assignment)"),
    Rule("BHS-M004", "output-exists", M, "the output exists and --force was not given"),
    Rule("BHS-M005", "verify-failed", M, "the written image does not read back as intended"),
    Rule("BHS-M006", "write-failed", M, "writing the output failed (disk full, permissions, a signal)"),
    Rule("BHS-M007", "no-path", M, "no chain of steps leads from the image's format to the requested one"),
    Rule("BHS-M008", "registry-lint", M, "the migration registry breaks one of its invariants"),
    Rule("BHS-M009", "step-precondition", M, "the image uses something the step's destination format cannot hold"),
    # --- gate (issue 6) ---
    Rule("BHS-G001", "verdict-changed", G, "a verdict differs from the manifest's expectation"),
    Rule("BHS-G002", "verdict-worse", G, "a verdict is worse than the baseline's"),
    Rule("BHS-G003", "manifest-invalid", G, "the corpus manifest does not match its schema"),
    Rule("BHS-G004", "corpus-file-changed", G, "a corpus file's sha256 differs from the manifest"),
    Rule("BHS-G005", "baseline-invalid", U, "a --baseline file is not the JSON output of an earlier gate run"),
    # --- usage and tool ---
    Rule("BHS-X001", "usage", U, "the command line asks for something impossible"),
    Rule("BHS-X002", "input-unreadable", U, "an input path does not exist or cannot be read"),
    Rule("BHS-X003", "target-unknown", U, "a --target names no profile, or more than one"),
    Rule("BHS-X004", "target-profile-invalid", U, "a target profile file does not match the target schema"),
    Rule("BHS-X005", "internal-error", X, "an unexpected internal error (please report it)"),
)
