"""Exceptions a user can cause. The CLI turns each into one line on stderr and exit status 2."""


class VaelabError(Exception):
    """Base class for every error caused by input, files or flags (not by a bug in vaelab)."""


class ConfigError(VaelabError):
    """A configuration value, key, file or flag is invalid."""


class DataError(VaelabError):
    """A data file is missing, corrupt, or could not be downloaded."""


class RunError(VaelabError):
    """A run directory or checkpoint is missing, unreadable, or in use."""


class TrainingDiverged(VaelabError):
    """The training loss became non-finite."""


class Interrupted(VaelabError):
    """Training was stopped by SIGINT or SIGTERM after saving a checkpoint."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class SlowPathWarning(UserWarning):
    """A setting works but runs much slower here than the alternative (shown once per cause;
    the CLI prints it as one line)."""
