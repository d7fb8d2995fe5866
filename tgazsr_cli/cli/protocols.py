"""`tgazsr protocols [NAME]`: the published evaluation protocols, or one of them resolved dataset by dataset."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tgazsr_cli.cli import options as opt
from tgazsr_cli.cli.console import stdout
from tgazsr_cli.cli.listing import table


def protocols(
    name: Annotated[str | None, typer.Argument(help="A protocol (or a protocol .yaml file) to show resolved.")] = None,
    as_json: Annotated[bool, opt.flag("--json", help="Print the resolved protocol as JSON on stdout.")] = False,
    as_published: Annotated[bool, opt.flag("--as-published", help="Show it with the reference's own scoring "
                                           "choices (fp16 attack gradients, ...) instead of the honest defaults.")
                            ] = False,
) -> None:
    """List the evaluation protocols; with NAME, every fact it fixes per dataset (class names, templates, split,
    preprocessing, selection) and its attack, so that it can be diffed against a paper's code."""
    from tgazsr_cli.api.public import list_protocols, load_protocol

    if name is None:
        rows = []
        for known in list_protocols():
            protocol = load_protocol(known)
            attack = protocol.attack
            threat = "clean only" if attack.name == "none" else f"{attack.name} eps {attack.eps:g}/255"
            rows.append([known, str(len(protocol.datasets)), threat, "; ".join(protocol.reproduces)])
        if as_json:
            stdout.print(json.dumps([load_protocol(known).to_dict() for known in list_protocols()], indent=2))
            return
        table("protocols", ["name", "datasets", "attack", "reproduces"], rows)
        return
    protocol = load_protocol(name, as_published=as_published)
    if as_json:
        stdout.print(json.dumps(protocol.to_dict(), indent=2, ensure_ascii=False))
        return
    rows = []
    for key, entry in protocol.datasets.items():
        steps = entry.preprocessing
        shape = "native, resized in the model" if steps.native_resolution else (
            f"resize {steps.resize}" + (f" + crop {steps.crop}" if steps.crop else ""))
        selection = entry.selection
        chosen = selection.mode if selection.mode == "all" else f"{selection.mode} {selection.count or selection.name}"
        rows.append([key, entry.split, str(len(entry.classnames)), str(len(entry.templates)),
                     f"{shape}, {steps.interpolation}", chosen])
    scoring = protocol.scoring
    title = (f"{protocol.name}: {protocol.attack.name} eps {protocol.attack.eps:g}/255, {scoring.precision}, "
             f"{scoring.loss_reduction} loss, robust over {scoring.robust_counting}")
    table(title, ["dataset", "split", "classes", "templates", "preprocessing", "selection"], rows)
