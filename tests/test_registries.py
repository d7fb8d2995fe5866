"""Every registry refuses a second registration of a name, and every registered dataset's tables load."""

from __future__ import annotations

import pytest

from tgazsr_cli.attacks import ATTACKS, register_attack
from tgazsr_cli.data import get_dataset_spec, list_datasets, register_dataset
from tgazsr_cli.errors import UsageError
from tgazsr_cli.methods import METHODS, TrainingMethod, register_method


@pytest.mark.parametrize("name", list_datasets())
def test_every_dataset_spec_has_its_class_names_and_templates(name: str) -> None:
    spec = get_dataset_spec(name)
    assert len(spec.classnames) >= 2 and all(isinstance(c, str) and c.strip() for c in spec.classnames)
    prompts = [template.format(spec.classnames[0]) for template in spec.templates]
    assert prompts and all(spec.classnames[0] in prompt for prompt in prompts)


def test_a_dataset_name_is_registered_once() -> None:
    with pytest.raises(UsageError, match="already registered"):
        register_dataset(get_dataset_spec("shapes"))


def test_a_method_name_is_registered_once() -> None:
    class Clash(TrainingMethod):
        name = "tecoa"

    with pytest.raises(ValueError, match="'tecoa' is already registered"):
        register_method(Clash)
    assert METHODS["tecoa"].__name__ == "TeCoA"


def test_an_attack_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="'pgd' is already registered"):
        register_attack("pgd", ATTACKS["cw"].run, "another pgd")
    assert "CW" not in ATTACKS["pgd"].help


def test_attack_entries_carry_their_help_and_class_minimum() -> None:
    assert {name: entry.min_classes for name, entry in ATTACKS.items() if entry.min_classes != 2} == \
        {"apgd-dlr": 3, "apgd-t": 4}
    assert all(entry.help and entry.name == name for name, entry in ATTACKS.items())


def test_every_declared_attack_resolves_to_its_function() -> None:
    from tgazsr_cli.attacks.apgd import apgd_ce, apgd_targeted
    from tgazsr_cli.attacks.pgd import pgd_cw

    assert ATTACKS["apgd-ce"].run is apgd_ce and ATTACKS["apgd-t"].run is apgd_targeted
    assert ATTACKS["cw"].run is pgd_cw
    assert all(callable(entry.run) for entry in ATTACKS.values())


def test_attack_help_states_the_constants_the_code_uses() -> None:
    from tgazsr_cli.attacks.apgd import DEFAULT_TARGETS
    from tgazsr_cli.attacks.pgd import CW_KAPPA

    assert f"top-{DEFAULT_TARGETS} " in ATTACKS["apgd-t"].help and f"top-{DEFAULT_TARGETS} " in ATTACKS["fab-t"].help
    assert f"kappa {CW_KAPPA:g} " in ATTACKS["cw"].help
