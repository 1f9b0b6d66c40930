"""The ``vec2face`` command line. Each command group lives in its own module."""
