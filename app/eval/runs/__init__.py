"""Stored evaluation runs (memora.eval_run): what each completed `memora eval` measured, for the console and the API."""
