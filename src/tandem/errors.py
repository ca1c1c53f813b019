"""Errors a user can cause. The CLI prints them without a traceback and exits with code 2."""


class TandemError(Exception):
    """Base class for errors caused by user input (config, data, files)."""


class ConfigError(TandemError):
    """A configuration value is missing, unknown, of the wrong type or impossible."""


class DataError(TandemError):
    """A data file is missing, empty, malformed or inconsistent."""


class CheckpointError(TandemError):
    """A checkpoint file is missing, corrupt, unsafe or incompatible."""


class TrainingError(TandemError):
    """Training cannot go on (e.g. the loss keeps being NaN/Inf); the last good checkpoint
    is kept."""
