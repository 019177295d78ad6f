"""Data layer: readers (files -> RawBatch), featurisers (RawBatch -> matrix) and preprocessing state."""
