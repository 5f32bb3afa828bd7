"""The two ways a stage fails (docs/design.md §2): bad input from the user, or trouble at run time."""


class SganError(Exception):
    """A failure at run time: one sentence naming the file or setting at fault; exit status 1."""

    exit_code = 1


class UsageError(SganError):
    """A bad flag or value: one sentence, no traceback; exit status 2."""

    exit_code = 2
