"""The published evaluation protocols, one data file each (`<name>.yaml` beside this module; docs/protocols.md).

`list_protocols()` names them; `load_protocol(name)` reads one with every per-dataset fact resolved (class names,
templates, split, preprocessing, selection, the attack and how robust accuracy is counted). Torch-free.
"""

from __future__ import annotations

from pathlib import Path

from tgazsr_cli.errors import unknown_name
from tgazsr_cli.protocols.spec import Protocol, ProtocolAttack, ProtocolDataset, Scoring, protocol_from_yaml

PROTOCOLS_DIR = Path(__file__).resolve().parent

__all__ = ["PROTOCOLS_DIR", "Protocol", "ProtocolAttack", "ProtocolDataset", "Scoring", "list_protocols",
           "load_protocol", "protocol_path"]


def list_protocols() -> list[str]:
    """The shipped protocol names, sorted."""
    return sorted(path.stem for path in PROTOCOLS_DIR.glob("*.yaml"))


def protocol_path(name: str) -> Path:
    """The data file of protocol `name`; a path to a protocol file of one's own also works."""
    given = Path(name).expanduser()
    if name.endswith((".yaml", ".yml")) and given.is_file():
        return given
    if name not in list_protocols():
        raise unknown_name("protocol", name, list_protocols())
    return PROTOCOLS_DIR / f"{name}.yaml"


def load_protocol(name: str, *, as_published: bool = False) -> Protocol:
    """Protocol `name` (a shipped name or a .yaml path), resolved; with `as_published`, the reference's own
    scoring choices (fp16 attack gradients, ...) instead of the honest defaults."""
    import tgazsr_cli.data  # noqa: F401  (registers the dataset files the protocol reads)

    protocol = protocol_from_yaml(protocol_path(name))
    return protocol.as_published_version() if as_published else protocol
