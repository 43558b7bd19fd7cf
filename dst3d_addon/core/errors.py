"""The errors a user can act on: each carries one line that names the file or option and the problem."""


class Dst3dError(Exception):
    """Base of dst3d's user-facing errors; str(error) is the one-line message the CLI prints."""


class CadError(Dst3dError):
    """A CAD file that cannot be used; the message names the file and what is wrong with it."""
