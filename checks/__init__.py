"""Built-in checks: one module per check, loaded by file by midoctor.registry."""
