"""illust2vec: tag and feature extraction for anime pictures (Saito and Matsui, 2015).

A package of its own because it is useful on its own (tagging, features), and because Twin-GAN's
character conditioning uses it as one of its two character-code sources. The published weights
are Caffe files a user downloads; `illust2vec convert` turns them into safetensors without Caffe.
"""

from illust2vec.model import Illust2Vec, network_input
from illust2vec.tags import CATEGORIES, tag_indices, tag_list

__all__ = ["CATEGORIES", "Illust2Vec", "network_input", "tag_indices", "tag_list"]
