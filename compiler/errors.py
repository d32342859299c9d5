"""The one exception type that user-facing failures travel as.

Anything the user can fix (a bad file, an unsupported op, a bad option, an
impossible constraint) is raised as `QccError`; the CLIs print its message on
one line and exit with status 2.
"""


class QccError(Exception):
    """A failure caused by the user's input, with a message that says what and where."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def internal_error(tool: str, e: BaseException) -> int:
    """Reports a bug in qcc itself (not in the user's input) on one line, exit 3.

    Set QCC_TRACEBACK=1 to get the Python traceback for a bug report."""
    import os
    import sys
    import traceback

    if os.environ.get("QCC_TRACEBACK"):
        traceback.print_exc()
    msg = " ".join(str(e).split())[:300]
    print(f"{tool}: internal error: {type(e).__name__}: {msg} "
          "(a bug in qcc; rerun with QCC_TRACEBACK=1 and report it)", file=sys.stderr)
    return 3

