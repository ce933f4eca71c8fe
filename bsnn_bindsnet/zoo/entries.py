"""The zoo's JSON entries, read without torch: ``bsnn zoo`` lists them and ``zoo:NAME`` is
checked before any heavy import (:mod:`bsnn_bindsnet.cli.zoo`).

Each ``<name>.json`` records, besides what it describes, the SHA-256 of its ``.npz`` weights
(``sha256``) and ``record_sha256``: the SHA-256 of the entry itself (every other field, the
weights' hash included, as canonical JSON), so an edited accuracy, quantization or weights hash
is refused, naming the file, like damaged weights are. A malformed or incomplete file is refused
in one line naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DATA_DIR", "ZOO_FORMAT", "ZooEntry", "ZooError", "cache_path", "default_cache_dir",
           "entry", "list_models", "read_entry", "record_digest"]

# v2: the entry carries record_sha256 (v1 entries did not; they are refused: pack them again)
ZOO_FORMAT = "bsnn-bindsnet/zoo-v2"
DATA_DIR = Path(__file__).resolve().with_name("data")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class ZooError(ValueError):
    """An unknown zoo name or a damaged zoo file."""


@dataclass(frozen=True)
class ZooEntry:
    """One shipped model, as recorded in ``zoo/data/<name>.json``.

    Attributes:
        test_correct, test_n: Correct images of the full test split, and its size.
        subset_correct, subset_n: The same on the first ``subset_n`` test images.
        sha256, size_bytes: SHA-256 and size of the ``.npz`` weights file.
    """

    name: str
    description: str
    model: str
    model_kwargs: dict[str, Any]
    dataset: str
    train_commands: tuple[str, ...]
    commit: str
    test_correct: int
    test_n: int
    subset_correct: int
    subset_n: int
    sha256: str
    size_bytes: int
    layout: dict[str, dict[str, Any]]

    @property
    def test_accuracy(self) -> float:
        """Accuracy of the shipped weights on the full test split."""
        return self.test_correct / self.test_n

    @property
    def subset_accuracy(self) -> float:
        """Accuracy of the shipped weights on the fixed subset."""
        return self.subset_correct / self.subset_n

    @property
    def weights_file(self) -> Path:
        """The ``.npz`` file of this entry."""
        return DATA_DIR / f"{self.name}.npz"

    @classmethod
    def from_json(cls, record: Mapping[str, Any], source: str = "zoo entry") -> ZooEntry:
        """The entry of a parsed JSON ``record``, checked (``source`` names it in errors)."""
        if not isinstance(record, Mapping):
            raise ZooError(f"{source}: expected a JSON object, got {type(record).__name__}")
        if record.get("format") != ZOO_FORMAT:
            raise ZooError(f"{source} has format {record.get('format')!r}; expected "
                           f"{ZOO_FORMAT!r} (pack the entry again)")
        missing = [k for k in (*cls.__dataclass_fields__, "record_sha256") if k not in record]
        if missing:
            raise ZooError(f"{source} is incomplete: no {', '.join(missing)}; reinstall "
                           "bsnn-bindsnet (or pack the entry again)")
        if record["record_sha256"] != record_digest(record):
            raise ZooError(f"{source} was changed after it was packed: its content no longer "
                           "matches its record_sha256; reinstall bsnn-bindsnet (or pack the "
                           "entry again)")
        fields = {k: record[k] for k in cls.__dataclass_fields__}
        fields["train_commands"] = tuple(fields["train_commands"])
        try:
            e = cls(**fields)
            ok = e.test_n > 0 and e.subset_n > 0 and NAME.match(e.name)
        except TypeError:
            ok = False
        if not ok:
            raise ZooError(f"{source}: malformed entry (expected a lower-case name and test "
                           "counts > 0)")
        return e


def record_digest(record: Mapping[str, Any]) -> str:
    """SHA-256 of ``record`` without ``record_sha256``, as canonical JSON (sorted keys)."""
    body = {k: v for k, v in record.items() if k != "record_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_entry(path: Path) -> ZooEntry:
    """The entry in the JSON file ``path``; any defect raises :class:`ZooError` naming it."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ZooError(f"{path} is not a readable zoo entry ({type(err).__name__}: "
                       f"{str(err).splitlines()[0] if str(err) else 'no details'}); "
                       "reinstall bsnn-bindsnet") from None
    return ZooEntry.from_json(record, str(path))


def _entry_files() -> Iterator[Path]:
    return iter(sorted(DATA_DIR.glob("*.json")))


def list_models() -> list[ZooEntry]:
    """Every shipped entry, sorted by name."""
    return [read_entry(p) for p in _entry_files()]


def entry(name: str) -> ZooEntry:
    """The entry called ``name``; an unknown name raises :class:`ZooError` listing them."""
    path = DATA_DIR / f"{name}.json"
    if not NAME.match(name) or not path.is_file():
        names = ", ".join(p.stem for p in _entry_files()) or "none"
        raise ZooError(f"no zoo model called {name!r}; the zoo has: {names}")
    return read_entry(path)


def default_cache_dir() -> Path:
    """Where :func:`bsnn_bindsnet.zoo.registry.materialize` writes: ``$BSNN_ZOO_CACHE`` if
    set, else ``~/.cache/bsnn_bindsnet/zoo``."""
    env = os.environ.get("BSNN_ZOO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "bsnn_bindsnet" / "zoo"


def cache_path(e: ZooEntry, directory: str | os.PathLike | None = None) -> Path:
    """``<directory>/<name>-<sha256[:12]>/model.pt``: the file ``materialize`` writes."""
    root = Path(directory) if directory is not None else default_cache_dir()
    return root / f"{e.name}-{e.sha256[:12]}" / "model.pt"
