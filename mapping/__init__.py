"""Mapping: source JSON to normalised ISO/IEC 20000 process records (field names, no HTTP)."""
