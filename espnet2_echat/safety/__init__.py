"""Guards for untrusted input: archives, checkpoints, downloads, utterance ids, and
crash-safe writes (see SECURITY.md at the repository root)."""
