"""midoctor: diagnose why an Azure managed-identity token cannot be obtained or is rejected."""

__version__ = "0.1.0"
