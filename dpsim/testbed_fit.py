"""`python -m dpsim.testbed_fit`: kept as an entry point; the code lives in `dpsim.reproduce.testbed_fit`."""

if __name__ == "__main__":
    from dpsim.reproduce.testbed_fit import main

    main()
