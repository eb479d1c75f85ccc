"""Batch files: a JSONL file of inference requests (``POST /batches``), validated whole, kept
with the batch and fed to the job queue a few lines at a time per tenant."""
