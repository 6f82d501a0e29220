"""Errors a user can fix: the CLI prints their message as one line, without a traceback."""


class UserError(Exception):
    """Bad input (config, data, model): the message names the problem and the fix."""


class Preempted(KeyboardInterrupt):
    """SIGTERM (a scheduler preempting the job): stop now, end the run KILLED and keep the
    resume state, so the same command continues. A KeyboardInterrupt, so a sweep stops too."""
