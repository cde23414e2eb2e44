"""sim2real package."""
