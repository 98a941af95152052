"""Errors about the user's input. The CLI prints them in one line, without a traceback."""


class MaskdepthError(ValueError):
    """Bad input from the user: the message names the file or argument at fault."""


class BadInputError(MaskdepthError):
    """A file that cannot be used (missing, truncated, wrong mode or size)."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class DiskFullError(MaskdepthError):
    """Writing `path` failed because its file system is full (or the user's quota is used up)."""

    def __init__(self, path, quota: bool = False):
        self.path = str(path)
        what = "disk quota exceeded" if quota else "no space left on device"
        super().__init__(f"{path}: {what}; free some space (or write elsewhere) and run again")
