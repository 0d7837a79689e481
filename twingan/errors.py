"""The one exception type for mistakes a user can fix (paths, images, config keys, checkpoints).

The CLI turns it into a single-line message with a non-zero exit instead of a traceback; anything
else that escapes is a bug in TwinGAN and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, worded so that the message alone says what to fix."""
