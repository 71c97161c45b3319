"""`platform --help` lists every command without importing them (a CLI that starts at once)."""

from __future__ import annotations

import subprocess
import sys

import click
import click.testing
import pytest

from matplat.cli.main import COMMANDS, _load, cli


def test_each_summary_is_its_commands_own_first_help_paragraph() -> None:
    for name, (_module, _attr, summary) in COMMANDS.items():
        command = _load(name)
        assert command.name == name
        first = (command.help or "").split("\n\n")[0].replace("\n", " ").strip()
        assert summary == first, f"{name}: registry says {summary!r}, command says {first!r}"


@pytest.mark.parametrize("args", [["--help"], ["query", "--help"], ["export", "--help"]])
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from matplat.cli.main import cli\n"
        "try:\n"
        f"    cli({args!r}, prog_name='platform')\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('pandas', 'alembic', 'torch', 'numpy', 'pymatgen', 'celery')\n"
        "print('LOADED', ','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "LOADED \n" in out.stdout or out.stdout.rstrip().endswith("LOADED"), out.stdout
    if args == ["--help"]:
        for name in COMMANDS:
            assert f"\n  {name} " in out.stdout


def test_a_command_loads_on_use_and_unknown_commands_are_usage_errors() -> None:
    runner = click.testing.CliRunner()
    result = runner.invoke(cli, ["query", "--help"])
    assert result.exit_code == 0 and "SQL" in result.output
    result = runner.invoke(cli, ["no-such-command"])
    assert result.exit_code == 2 and "No such command" in result.output
