"""The host's service: a package called `app`, as in most FastAPI projects, and as Memora's own."""
