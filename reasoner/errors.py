"""User-facing errors: the CLI prints them as one line and exits 2 (no traceback)."""


class UserError(Exception):
    """A problem with the user's input or config: reported as one line, exit code 2."""


class DataError(UserError):
    """Bad input data, located by file, line (or record index) and field."""

    def __init__(self, path, line, field, message):
        self.path, self.line, self.field = path, line, field
        where = f"{path}:{line}" if line is not None else f"{path}"
        what = f" field '{field}':" if field else ""
        super().__init__(f"{where}:{what} {message}")
