"""Connectors: fetch from Jira, ServiceNow and exported files (HTTP and source APIs only)."""
