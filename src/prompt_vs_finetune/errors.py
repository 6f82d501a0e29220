"""Errors a user can fix: the CLI prints their message as one line, without a traceback."""


class UserError(Exception):
    """Bad input (config, data, model): the message names the problem and the fix."""


class Preempted(KeyboardInterrupt):
    """SIGTERM: the run ends KILLED, its resume state kept; a KeyboardInterrupt: a sweep stops."""


class UnreadableReply(Exception):
    """A hosted model's reply not in the API's shape (no choices, not JSON, no usage), not a bug."""


def first_line(err: BaseException, limit: int = 300) -> str:
    """An error's first line (else its type's name), cut to `limit`: what a message quotes."""
    text = str(err).strip().splitlines()
    return text[0][:limit] if text else type(err).__name__


def causes(err: BaseException | None, implicit: bool = True):
    """`err` and its causes (`__cause__`, with `implicit` else `__context__`), each once."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))  # a chain can loop (an error raised from itself)
        yield err
        err = err.__cause__ or (err.__context__ if implicit else None)
