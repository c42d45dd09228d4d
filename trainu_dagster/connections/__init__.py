"""How studios connect to GHL: their connections, and the secrets those hold, sealed."""
