"""The one error type for bad user input: the CLI prints its message and exits with code 2."""


class InputError(ValueError):
    """Bad input — a file, a record, a config key or a value — named in the message.

    Raised before any output is written, so a failed command leaves nothing half-done.
    """
