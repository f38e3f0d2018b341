"""The one exception type the zoo and its recipes raise for bad input."""


class ZooError(Exception):
    """Bad input from the user: a wrong name, value, path or artifact.

    The message is a single line that says what was wrong and what to do, so a
    command-line entry point can print it as is, without a traceback.
    """


def first_line(error, default=None, limit=200):
    """The first line of `error`'s message, cut at `limit` characters, for a one-line ZooError; `default`
    (the error's type name when None) when the message is empty."""
    text = str(error).strip()
    if not text:
        return default or type(error).__name__
    line = text.splitlines()[0]
    return line if len(line) <= limit else line[:limit] + "..."
