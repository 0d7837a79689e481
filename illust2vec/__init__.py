"""illust2vec: tag and feature extraction for anime pictures (Saito and Matsui, 2015).

A separate package because it is useful on its own (tagging, features) and because Twin-GAN's
character conditioning only needs its outputs, not its weights. The network, the Caffe weight
converter and the tagging API arrive with the character-conditioning work.
"""
