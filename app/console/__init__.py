"""The web console (/console): server-rendered pages over the same services as the REST API, with its own CSS and
script served by the app itself, so it works offline (docs/console.md)."""
