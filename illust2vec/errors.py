"""The one exception type for mistakes a user can fix: a missing or foreign weights file, a picture
that cannot be read, a request the loaded model cannot answer.

illust2vec is a package of its own, so it names its own error; the `illust2vec` command, and
TwinGAN's where it uses illust2vec, turn it into one line instead of a traceback.
"""


class Illust2VecError(Exception):
    """A problem with the user's input, worded so that the message alone says what to fix."""
