"""Nearest faces in the shared latent: embeddings of pictures and the on-disk FAISS index."""
