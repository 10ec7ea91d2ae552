"""The `dpsim` command line: one click group (`dpsim.cli.app`), one module per command family.

`from dpsim.cli.app import main` and `python -m dpsim.cli` keep working (the console script is
`dpsim.cli.app:main`)."""

from dpsim.cli.app import main

__all__ = ["main"]
