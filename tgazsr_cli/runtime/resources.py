"""Files that ship inside the package (recipes, model configs, weights, data), found through importlib.resources.

An installed wheel and an editable checkout both hold the package as a folder on disk, so a resource is a
plain path; zipped installs (zipimport) are not supported, as torch and open_clip need real files too.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE = "tgazsr_cli"


def package_path(*parts: str) -> Path:
    """The path of a file or folder inside the installed `tgazsr_cli` package."""
    return Path(str(resources.files(PACKAGE).joinpath(*parts)))
