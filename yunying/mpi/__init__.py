"""The patient master index (issue 15 part 5): one person across hospitals and systems."""
