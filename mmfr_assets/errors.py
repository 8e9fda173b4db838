"""Errors that mean "the user's input was refused", as opposed to a bug or a failed run.

Whatever raises one must put everything a user needs in one line (the path, subset, file or
name at fault, and what was expected), because `mmfr` prints exactly that line and exits 2.
"""


class InputError(Exception):
    """Bad input (a source, a mapping, a config value): one clear line, exit code 2."""
