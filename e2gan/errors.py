"""The one exception type users see.

Anything raised as `E2GANError` is a problem with the user's input or environment (a missing file,
an unknown concept, an adapter for another base). The CLI prints its message as one line and exits
non-zero; everything else is a bug and keeps its traceback.
"""


class E2GANError(Exception):
    """A problem the user can fix, described in one line."""
