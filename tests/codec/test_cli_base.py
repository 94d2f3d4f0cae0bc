"""The command-line base shared by ``dhvc`` and ``netsim`` (codec.cli.base): one-line errors
and exit codes for both, ``dhvc train``'s defaults read from ``TrainConfig``, one device list."""

from __future__ import annotations

import dataclasses

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from codec.cli import base
from codec.cli.dhvc import app as dhvc_app
from codec.model.device import DEVICES
from codec.train.config import TrainConfig
from netsim.cli import app as netsim_app

APPS = {"dhvc": dhvc_app, "netsim": netsim_app}


@pytest.mark.parametrize("name", sorted(APPS))
def test_an_unknown_option_is_one_error_line_and_exit_code_2(name: str) -> None:
    result = CliRunner().invoke(APPS[name], ["info", "--bogus"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == base.EXIT_USER_ERROR
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert f"(see {name} info --help)" in lines[0] or "(see" in lines[0]


@pytest.mark.parametrize("name", sorted(APPS))
def test_the_typer_group_catches_the_exception_classes_typer_raises(name: str) -> None:
    """``base.click_exceptions`` comes from Typer's private copy of click (no public path to
    the classes); this fails if Typer raises other classes than the ones it names."""
    command = get_command(APPS[name])
    with pytest.raises(base.click_exceptions.UsageError):
        command.main(["--bogus"], standalone_mode=False)
    assert issubclass(base.click_exceptions.NoArgsIsHelpError, base.click_exceptions.UsageError)


def test_fail_and_interrupted_exit_with_the_shared_codes(capsys) -> None:
    with pytest.raises(typer.Exit) as failed:
        base.fail("bad\n  value")
    assert failed.value.exit_code == 2
    with pytest.raises(typer.Exit) as stopped:
        base.interrupted()
    assert stopped.value.exit_code == 130
    assert capsys.readouterr().err.splitlines() == ["error: bad value", "interrupted"]


def test_dhvc_train_takes_every_default_from_train_config() -> None:
    train = get_command(dhvc_app).commands["train"]  # type: ignore[attr-defined]
    defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    options = {"compile_model": "compile"}
    checked = 0
    for param in train.params:
        field = options.get(param.name, param.name)
        if field in defaults:
            assert param.default == defaults[field], param.name
            checked += 1
    assert checked >= 15


def test_netsim_device_choices_are_the_one_device_list() -> None:
    assert [device.value for device in base.Device] == list(DEVICES)
