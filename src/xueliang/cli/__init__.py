"""The ``xueliang`` command: set-up, running, and administration from the host."""
