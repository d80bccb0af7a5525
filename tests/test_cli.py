"""The ``bimtdp`` entry point itself: help, version, and the one-line error convention."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nas import __version__
from nas.cli import main


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 0
    assert "usage: bimtdp" in capsys.readouterr().out


def test_unknown_verb_exits_2_with_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "nas", "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "invalid choice: 'frobnicate'" in result.stderr
    assert "invalid choice" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_does_not_import_torch() -> None:
    code = "import sys; from nas.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
