"""Property-based: every bad recipe or CLI value is a clean one-line error with the right exit code."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tgazsr_cli.cli.app import main
from tgazsr_cli.config import Recipe, load_recipe
from tgazsr_cli.errors import UsageError

NUMERIC_KEYS = ["method_options.alpha", "method_options.beta", "loss.alpha", "optim.lr", "optim.momentum",
                "attack.eps", "attack.step_size",
                "data.batch_size", "attack.steps", "optim.warmup_steps", "eval.eps", "eval.batch_size",
                "train.threads", "eval.threads"]
junk = st.one_of(st.text(min_size=1, max_size=12), st.floats(allow_nan=True), st.integers(-10**9, 10**9),
                 st.booleans(), st.lists(st.integers(), max_size=3), st.none())


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(NUMERIC_KEYS), value=junk)
def test_any_value_for_a_numeric_key_is_accepted_or_a_usage_error(key: str, value: object) -> None:
    try:
        recipe = load_recipe(None, flags={key: value})
    except UsageError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert isinstance(recipe, Recipe)  # accepted values are coerced into the typed recipe


@settings(max_examples=60, deadline=None)
@given(key=st.from_regex(r"[a-z_]{1,8}(\.[a-z_]{1,8})?", fullmatch=True), value=st.integers())
def test_unknown_keys_are_named(key: str, value: int) -> None:
    known = set(Recipe().to_dict()) | {f"{s}.{k}" for s, v in Recipe().to_dict().items() if isinstance(v, dict)
                                       for k in v}
    if key in known or key.split(".")[0] in {"method_options"}:
        return
    with pytest.raises(UsageError) as info:
        load_recipe(None, [f"{key}={value}"])
    assert "recipe key" in str(info.value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(eps=st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=64.0001, max_value=1e12)),
       steps=st.integers(-100, -1))
def test_cli_rejects_out_of_range_attack_values(eps: float, steps: int, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["eval", "--model", "tgazsr-tiny", "--eps", repr(eps)],
                 ["eval", "--model", "tgazsr-tiny", "--steps", str(steps)],
                 ["train", "--train-eps", repr(eps), "--print-config"]):
        code = main(args)
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.integers(max_value=0))
def test_cli_rejects_non_positive_batch_sizes(batch: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--model", "tgazsr-tiny", "--batch-size", str(batch)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
