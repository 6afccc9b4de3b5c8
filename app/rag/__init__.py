"""Answers: retrieve a collection's chunks with hybrid search, pack them into a prompt, let a chat model answer."""
