"""The console's pages, one module per area; each calls the services its JSON endpoints call."""
