"""The one exception type that user-facing failures travel as.

Anything the user can fix (a bad file, an unsupported op, a bad option, an
impossible constraint) is raised as `QccError`; the CLIs print its message on
one line and exit with status 2.
"""


class QccError(Exception):
    """A failure caused by the user's input, with a message that says what and where."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
