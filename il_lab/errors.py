"""The one exception type for a user's mistake (a bad override, a bad file)."""


class ConfigError(ValueError):
    """Bad user input: the message names the key and what is allowed, and fits on one line.

    ``run.py`` turns it into a single logged line and a non-zero exit instead of a traceback.
    """
