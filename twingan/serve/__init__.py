"""`twingan serve`: a web page and JSON API over a loaded checkpoint (FastAPI on uvicorn)."""
