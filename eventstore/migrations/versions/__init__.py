"""The revisions, oldest first: r0001 (legacy baseline) to r0005 (contract)."""
