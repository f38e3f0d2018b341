"""The one exception type the zoo and its recipes raise for bad input."""


class ZooError(Exception):
    """Bad input from the user: a wrong name, value, path or artifact.

    The message is a single line that says what was wrong and what to do, so a
    command-line entry point can print it as is, without a traceback.
    """
