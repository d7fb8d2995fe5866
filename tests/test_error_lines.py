"""An error before any progress bar is drawn is the only line on stderr (no empty line first)."""

from __future__ import annotations

import pytest

from tgazsr_cli.cli.app import main


def test_unknown_dataset_error_is_the_first_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--model", "tgazsr-tiny", "--datasets", "fooo"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: unknown dataset 'fooo' (did you mean 'food101'?)"), repr(err[:80])
    assert len(err.strip().splitlines()) == 1
