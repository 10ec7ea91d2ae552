"""`python -m dpsim.bench`: kept as an entry point; the code lives in `dpsim.tools.bench`."""

if __name__ == "__main__":
    from dpsim.tools.bench import main

    main()
