"""Data: the multi-resolution LMDB dataset, image decoding, FFHQ alignment, landmarks, the prep pipeline."""
