"""What the mirror keeps of its past: the change log's retention, and outbound webhooks."""
