"""The Hub: pushing allowlisted folders, model cards, and secrets kept out of records."""
