"""Errors about the user's input. The CLI prints them in one line, without a traceback."""


class MaskdepthError(ValueError):
    """Bad input from the user: the message names the file or argument at fault."""


class BadInputError(MaskdepthError):
    """A file that cannot be used (missing, truncated, wrong mode or size)."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")
