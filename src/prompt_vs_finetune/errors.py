"""Errors a user can fix: the CLI prints their message as one line, without a traceback."""


class UserError(Exception):
    """Bad input (config, data, model): the message names the problem and the fix."""


class Preempted(KeyboardInterrupt):
    """SIGTERM (a scheduler preempting the job): stop now, end the run KILLED and keep the
    resume state, so the same command continues. A KeyboardInterrupt, so a sweep stops too."""


class UnreadableReply(Exception):
    """A hosted model's reply that is not the API's reply shape (no choices, not JSON, no
    usage): told apart from a bug in pvf, which would surface as itself."""


def first_line(err: BaseException, limit: int = 300) -> str:
    """An error's first line (else its type's name), at most `limit` characters: what a
    one-line message quotes of a library's error."""
    text = str(err).strip().splitlines()
    return text[0][:limit] if text else type(err).__name__


def causes(err: BaseException | None, implicit: bool = True):
    """`err`, then what caused it (`__cause__`, and with `implicit` else `__context__`), each
    once: a chain can loop (an error raised from itself, or two that name each other)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or (err.__context__ if implicit else None)
