"""The one exception type for mistakes a user can fix (paths, images, config keys, checkpoints).

The CLI turns it into a single-line message with a non-zero exit instead of a traceback; anything
else that escapes is a bug in TwinGAN and keeps its traceback. An OSError (a full disk, a folder
without write permission) is the user's machine, not a bug: `describe_os_error` words it as one
line, and the CLI uses it for any OSError that reaches it.
"""

from __future__ import annotations

import errno

_REASONS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
            errno.EACCES: "permission denied", errno.EPERM: "permission denied",
            errno.EROFS: "the file system is read-only", errno.ENOTDIR: "a part of the path is a file, not a folder",
            errno.EISDIR: "it is a folder", errno.EEXIST: "it already exists", errno.ENOENT: "no such file or folder",
            errno.ENAMETOOLONG: "the name is too long", errno.EIO: "input/output error (a failing disk?)"}


class UserError(Exception):
    """A problem with the user's input, worded so that the message alone says what to fix."""


class ConfigError(UserError):
    """A config a run cannot take (an unknown key, a value of the wrong type or range, keys that
    disagree), named by its key: a usage error, so the CLI exits 2 as click does for its own."""


def describe_os_error(exc: OSError, with_path: bool = True) -> str:
    """"PATH: the disk is full" (or just the reason): the path the system named, then why, in words."""
    reason = _REASONS.get(exc.errno, exc.strerror or str(exc) or type(exc).__name__)
    if not with_path or exc.filename is None:
        return reason
    target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
    return f"{target}: {reason}"
