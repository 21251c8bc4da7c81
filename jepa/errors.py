"""The one exception type for problems a user can fix (paths, configs, data)."""


class JEPAError(Exception):
    """A user-facing problem; the ``jepa`` command prints its message as one line and exits with status 2."""
