"""dpsim.kernel.policies: see dpsim/__init__.py (reading guide) and docs/architecture.md."""
