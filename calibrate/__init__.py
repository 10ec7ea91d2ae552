"""dpsim-calibrate: measure a real cluster (storage, transport, GPU copies, the dual-path loader),
fit dpsim's hardware parameters with confidence intervals, and check the fitted simulator against
what was measured.

Optional back-ends (pyverbs, torch, the 3FS USRBIO binding) are imported lazily; when one is missing
the command that needs it fails with a single line (:class:`calibrate.errors.Unavailable`) and the
rest of the harness keeps working.
"""

__version__ = "0.1.0"
