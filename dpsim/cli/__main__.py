"""`python -m dpsim.cli ...`: the `dpsim` command."""

from dpsim.cli.app import main

main()
