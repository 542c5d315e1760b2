"""Bytes in and out: local paths and URIs (`locations`), tables in Parquet, CSV and npz."""
