"""dpsim.metrics: see dpsim/__init__.py (reading guide) and docs/architecture.md."""
