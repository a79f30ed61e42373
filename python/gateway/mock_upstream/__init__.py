"""`gateway mock-upstream`: a fast mock provider (OpenAI and Anthropic wire formats) shared by
the bench, the tests and users' own experiments."""
