"""The audit trail: every write and delete the REST API answered, in memora.audit_event (docs/security.md)."""
