"""From pictures to the model and back: the Translator (the one batched path), face paste and
tracking, and videos."""
