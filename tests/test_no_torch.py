"""Loading and checking a recipe, `--print-config` and the usage errors of train / eval / attack need no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from tgazsr_cli.cli.app import main
out = []
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    out.append([code, "torch" in sys.modules])
print(json.dumps(out))
"""


def run_without_torch(cases: list[list[str]], tmp_path: Path) -> list[list]:
    """Each argv through the CLI in one fresh interpreter: [exit code, whether torch was imported by then]."""
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(cases)], capture_output=True, text=True,
                          cwd=tmp_path, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loading_a_recipe_and_its_method_options_imports_no_torch(tmp_path: Path) -> None:
    code = ("import sys, tgazsr_cli as tz; r = tz.load_recipe('mini-world/ucat', ['optim.epochs=1']);"
            "assert r.method_options['kl_target'] == 'frozen-clean', r.method_options;"
            "assert tz.list_methods() and tz.list_attacks() and tz.list_protocols();"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert done.stdout.strip() == "False"


def test_print_config_and_every_usage_error_happen_before_torch(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("not a folder")
    tiny = ["--model", "tgazsr-tiny"]
    cases = {
        "print-config": (["train", "--print-config", "--method", "agft"], 0),
        "unknown key": (["train", "--set", "optim.lrr=1"], 2),
        "unknown method": (["train", "--method", "tga-zrs"], 2),
        "unknown recipe": (["train", "--recipe", "paper/no-such-row"], 2),
        "fare option below its bound": (["train", "--method", "fare", "--set", "method_options.attack_momentum=-5"], 2),
        "pmg-aft weight below 0": (["train", "--method", "pmg-aft", "--set", "method_options.kl_original_weight=-1"],
                                   2),
        "a choice off the list": (["train", "--set", "method_options.distance=kl"], 2),
        "eps over 64/255": (["train", "--train-eps", "300"], 2),
        "non-finite lr": (["train", "--lr", "nan"], 2),
        "bad trainable": (["train", "--trainable", "last-0"], 2),
        "a method-only flag": (["train", "--method", "fare", "--alpha", "0.3"], 2),
        "resume of nothing": (["train", "--resume", str(tmp_path / "no-run")], 2),
        "eval of nothing": (["eval"], 2),
        "eval unknown attack": (["eval", *tiny, "--attack", "pgdd"], 2),
        "eval unknown suite": (["eval", *tiny, "--suite", "zs99"], 2),
        "eval negative eps": (["eval", *tiny, "--eps", "-1"], 2),
        "eval on-broken": (["eval", *tiny, "--on-broken", "maybe"], 2),
        "eval output is a file": (["eval", *tiny, "-o", str(a_file)], 2),
        "attack unknown attack": (["attack", "-d", "digits", *tiny, "--attack", "nope"], 2),
        "attack without a model": (["attack", "-d", "digits"], 2),
        "attack output is a file": (["attack", "-d", "digits", *tiny, "-o", str(a_file)], 2),
        "attack negative eps": (["attack", "-d", "digits", *tiny, "--eps", "-1"], 2),
        "eval unknown protocol": (["eval", *tiny, "--protocol", "agtf"], 2),
        "eval dataset not in the protocol": (["eval", *tiny, "--protocol", "agft", "-d", "digits"], 2),
        "eval as-published without a protocol": (["eval", *tiny, "-d", "digits", "--as-published"], 2),
    }
    results = run_without_torch([argv for argv, _ in cases.values()], tmp_path)
    for (name, (_, expected)), (code, imported_torch) in zip(cases.items(), results, strict=True):
        assert (name, code, imported_torch) == (name, expected, False)


@pytest.mark.parametrize("argv", [["methods"], ["attacks"], ["recipes"], ["datasets"], ["protocols"],
                                  ["protocols", "robustvlm", "--json"]])
def test_listing_imports_no_torch(argv: list[str], tmp_path: Path) -> None:
    assert run_without_torch([argv], tmp_path) == [[0, False]]
