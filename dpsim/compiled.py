"""`python -m dpsim.compiled`: kept as an entry point; the code lives in `dpsim.tools.compiled`."""

if __name__ == "__main__":
    from dpsim.tools.compiled import main

    main()
