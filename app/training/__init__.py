"""Training data: datasets of labeled examples, their splits, snapshots, exports and batches."""
