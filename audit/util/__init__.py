"""Small helpers with no Flatline dependency (text formatting)."""
