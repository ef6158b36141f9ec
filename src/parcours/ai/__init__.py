"""AI: retrieval over the lab's documents, the insight and help-desk assistants."""
