"""opt package."""
