"""Training: the loop every model family shares (trainer) and what it writes for people (run_log)."""
