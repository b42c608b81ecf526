"""Starting the command line: a Ctrl-C while its modules load is an interrupted run."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

import pytest

from importer import __main__ as start
from importer.errors import ExitCode


class _CtrlCWhileImporting(importlib.abc.MetaPathFinder):
    """Behaves as a Ctrl-C arriving while ``importer.cli`` is being imported."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname == "importer.cli":
            raise KeyboardInterrupt
        return None


def test_ctrl_c_while_the_command_line_loads_exits_130_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delitem(sys.modules, "importer.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_CtrlCWhileImporting(), *sys.meta_path])
    try:
        with pytest.raises(SystemExit) as ended:
            start.main()
    except KeyboardInterrupt:
        pytest.fail("the Ctrl-C escaped the start-up guard (a traceback for the user)")
    assert ended.value.code == ExitCode.INTERRUPTED
    assert "interrupted while starting" in capsys.readouterr().err
