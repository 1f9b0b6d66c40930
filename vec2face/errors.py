"""Exceptions with one-line messages that name the thing at fault."""


class Vec2FaceError(Exception):
    """Base class: the CLI prints ``error: <message>`` and exits 2, without a traceback."""


class DataFormatError(Vec2FaceError):
    """A dataset file or record is malformed (names the path and, where known, the record)."""


class ConfigError(Vec2FaceError):
    """A configuration key or value is invalid or names a file that does not exist."""


class OutputWriteError(Vec2FaceError):
    """An output could not be written (a full disk, a read-only folder); names the path."""
