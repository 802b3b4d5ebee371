"""Keys, users, roles, password hashing and sessions."""
