"""dpsim.tools: see dpsim/__init__.py (reading guide) and docs/architecture.md."""
