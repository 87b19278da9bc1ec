"""Domain-wide building blocks: GB codes, errors, clock. Imports nothing else of the package."""
