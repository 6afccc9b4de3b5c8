"""Access control: who a request is (principal.py), API keys (keys.py), and what each route lets a role do."""
