"""The soak checks behind ``scripts/soak``."""
