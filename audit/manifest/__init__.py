"""What to audit: the plain case types and ids (`case`), the manifest (`schema`), its hints,
and the sources that expand entries into cases (`sources`)."""
