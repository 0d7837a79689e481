"""Numbers that judge a model: picture-set metrics, the anime/photo face rate, and the evaluation
that translates test sets both ways and scores them (scores)."""
