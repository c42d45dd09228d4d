"""Everything that knows how GoHighLevel speaks: API client, webhook payloads, signatures."""
