"""The S3 REST API, translated onto the Swift proxy's own requests."""
