"""Unpaired two-domain image data: robust loading, preprocessing, augmentation and loaders."""
