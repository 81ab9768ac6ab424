"""Access and room tokens: verification into an Identity, and minting for development."""
