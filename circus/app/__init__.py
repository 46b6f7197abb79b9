"""Process wiring: what `circus` does before and around the roles."""
